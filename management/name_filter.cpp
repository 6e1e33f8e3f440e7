#define PCRE2_CODE_UNIT_WIDTH 8
#include "management/name_filter.h"

#include <pcre2.h>

namespace warren::management {

struct NameFilter::Impl {
  pcre2_code* code = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_match_data* data = nullptr;
  ~Impl() {
    pcre2_match_data_free(data);
    pcre2_match_context_free(context);
    pcre2_code_free(code);
  }
};

std::optional<NameFilter> NameFilter::compile(std::string_view pattern) {
  if (pattern.size() > 1000) return std::nullopt;
  auto impl = std::make_shared<Impl>();
  int error = 0;
  PCRE2_SIZE offset = 0;
  impl->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                             PCRE2_CASELESS, &error, &offset, nullptr);
  if (!impl->code) return std::nullopt;
  impl->context = pcre2_match_context_create(nullptr);
  impl->data = pcre2_match_data_create_from_pattern(impl->code, nullptr);
  if (!impl->context || !impl->data) return std::nullopt;
  // Bounds on backtracking: a pathological pattern gives up within about a millisecond.
  pcre2_set_match_limit(impl->context, 100'000);
  pcre2_set_depth_limit(impl->context, 1'000);
  NameFilter f;
  f.impl_ = std::move(impl);
  return f;
}

bool NameFilter::matches(std::string_view name) const {
  return pcre2_match(impl_->code, reinterpret_cast<PCRE2_SPTR>(name.data()), name.size(), 0, 0,
                     impl_->data, impl_->context) >= 0;
}

}  // namespace warren::management
