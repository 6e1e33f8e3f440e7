#include "management/api.h"

#include <algorithm>
#include <cmath>
#include "management/name_filter.h"

#include <boost/asio/post.hpp>

#include "broker/broker.h"

namespace warren::management {

// Names and keys from AMQP clients are bytes, not necessarily UTF-8: invalid sequences are
// replaced rather than thrown on.
Response json_response(const Json& j, unsigned status) {
  return Response{status, j.dump(-1, ' ', false, Json::error_handler_t::replace)};
}

Response error_response(unsigned status, std::string_view error, std::string_view reason) {
  Json j;
  j["error"] = error;
  j["reason"] = reason;
  return json_response(j, status);
}

Response not_found() { return error_response(404, "Object Not Found", "Not Found"); }
Response method_not_allowed() {
  return error_response(405, "Method Not Allowed", "Method Not Allowed");
}
Response no_content() { return Response{204, ""}; }
Response deferred() { return Response{0, ""}; }
Response created() { return Response{201, ""}; }
Response bad_request(std::string_view reason) { return error_response(400, "bad_request", reason); }
Response not_authorised(std::string_view reason) {
  return error_response(401, "not_authorised", reason);
}

void add_with_rate(Json& j, const char* name, uint64_t value, double rate) {
  j[name] = value;
  // Rounded as RabbitMQ shows rates (one decimal).
  j[std::string(name) + "_details"] = Json{{"rate", std::round(rate * 10.0) / 10.0}};
}

Json message_stats_json(const broker::MessageStats& s, StatsOf of) {
  using S = broker::MessageStats;
  Json j = Json::object();
  auto add = [&](S::Field f) { add_with_rate(j, S::kNames[f], s.total(f), s.rate(f)); };
  if (of == StatsOf::kExchange) {
    add_with_rate(j, "publish_in", s.total(S::kPublish), s.rate(S::kPublish));
    add_with_rate(j, "publish_out", s.total(S::kPublishOut), s.rate(S::kPublishOut));
    return j;
  }
  add(S::kAck);
  if (of != StatsOf::kQueue) add(S::kConfirm);
  add(S::kDeliver);
  add_with_rate(j, "deliver_get", s.deliver_get(), s.deliver_get_rate());
  add(S::kDeliverNoAck);
  if (of != StatsOf::kQueue) add(S::kDropUnroutable);
  add(S::kGet);
  add(S::kGetEmpty);
  add(S::kGetNoAck);
  add(S::kPublish);
  add(S::kRedeliver);
  if (of != StatsOf::kQueue) add(S::kReturnUnroutable);
  return j;
}

std::optional<Json> parse_body(const Request& r, Response& err) {
  if (r.body.empty()) return Json::object();
  Json j = Json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    err = bad_request("not_json");
    return std::nullopt;
  }
  return j;
}

bool is_admin(const auth::User& u) { return auth::has_tag(u, "administrator"); }
bool is_monitor(const auth::User& u) { return is_admin(u) || auth::has_tag(u, "monitoring"); }

bool can_access_vhost(const Context& c, std::string_view vhost) {
  return is_monitor(c.user) || c.broker.users().permission(c.user.name, vhost) != nullptr;
}

namespace {
Json value_to_json(const amqp::FieldValue& v) {
  return std::visit(
      [](const auto& x) -> Json {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>) {
          return x;
        } else if constexpr (std::is_integral_v<T>) {
          return static_cast<int64_t>(x);
        } else if constexpr (std::is_floating_point_v<T>) {
          return static_cast<double>(x);
        } else if constexpr (std::is_same_v<T, amqp::Decimal>) {
          return static_cast<double>(x.value) / std::pow(10.0, x.scale);
        } else if constexpr (std::is_same_v<T, amqp::LongString> ||
                             std::is_same_v<T, amqp::ByteArray>) {
          return x.value;
        } else if constexpr (std::is_same_v<T, amqp::FieldArray>) {
          Json a = Json::array();
          for (const auto& e : x) a.push_back(value_to_json(e));
          return a;
        } else if constexpr (std::is_same_v<T, amqp::Timestamp>) {
          return x.value;
        } else if constexpr (std::is_same_v<T, amqp::FieldTable>) {
          return table_to_json(x);
        } else if constexpr (std::is_same_v<T, amqp::LongLongInt>) {
          return x.value;
        } else {
          return nullptr;
        }
      },
      v.v);
}

std::optional<amqp::FieldValue> json_to_value(const Json& j) {
  if (j.is_boolean()) return amqp::FieldValue(j.get<bool>());
  if (j.is_number_integer()) return amqp::FieldValue(j.get<int64_t>());
  if (j.is_number_float()) return amqp::FieldValue(j.get<double>());
  if (j.is_string()) return amqp::FieldValue(j.get<std::string>());
  if (j.is_array()) {
    amqp::FieldArray a;
    for (const auto& e : j) {
      auto v = json_to_value(e);
      if (!v) return std::nullopt;
      a.push_back(std::move(*v));
    }
    return amqp::FieldValue(std::move(a));
  }
  if (j.is_object()) {
    auto t = json_to_table(j);
    if (!t) return std::nullopt;
    return amqp::FieldValue(std::move(*t));
  }
  return std::nullopt;
}
}  // namespace

Json table_to_json(const amqp::FieldTable& t) {
  Json j = Json::object();
  for (const auto& [k, v] : t.entries) j[k] = value_to_json(v);
  return j;
}

std::optional<amqp::FieldTable> json_to_table(const Json& j) {
  amqp::FieldTable t;
  if (j.is_null()) return t;
  if (!j.is_object()) return std::nullopt;
  for (const auto& [k, v] : j.items()) {
    auto fv = json_to_value(v);
    if (!fv) return std::nullopt;
    t.set(k, std::move(*fv));
  }
  return t;
}

std::vector<std::string> parse_tags(const Json& j) {
  std::vector<std::string> out;
  auto add = [&](std::string t) {
    // Trim spaces: "administrator, management" is common.
    const auto b = t.find_first_not_of(' ');
    if (b == std::string::npos) return;
    t = t.substr(b, t.find_last_not_of(' ') - b + 1);
    if (!t.empty()) out.push_back(std::move(t));
  };
  if (j.is_array()) {
    for (const auto& e : j)
      if (e.is_string()) add(e.get<std::string>());
  } else if (j.is_string()) {
    const std::string s = j.get<std::string>();
    size_t start = 0;
    while (start <= s.size()) {
      size_t end = s.find(',', start);
      if (end == std::string::npos) end = s.size();
      add(s.substr(start, end - start));
      start = end + 1;
    }
  }
  return out;
}

std::string node_name() { return "warren@localhost"; }

bool json_bool(const Json& body, const char* key, bool fallback) {
  auto it = body.find(key);
  if (it == body.end()) return fallback;
  if (it->is_boolean()) return it->get<bool>();
  if (it->is_string()) return it->get<std::string>() == "true";
  return fallback;
}

broker::VHost* accessible_vhost(Context& c, const std::string& name, Response& err) {
  broker::VHost* v = c.broker.find_vhost(name);
  if (!v) {
    err = not_found();
  } else if (!can_access_vhost(c, name)) {
    err = not_authorised("Not_Authorized");
    v = nullptr;
  }
  return v;
}

Response list_per_vhost(Context& c, const Request& r,
                        const std::function<void(broker::VHost&, Json&)>& add) {
  Json list = Json::array();
  if (r.path.size() == 2) {
    Response err;
    broker::VHost* v = accessible_vhost(c, r.path[1], err);
    if (!v) return err;
    add(*v, list);
    return list_response(r, std::move(list));
  }
  for (const auto& [vname, v] : c.broker.vhosts()) {
    if (can_access_vhost(c, vname)) add(*v, list);
  }
  return list_response(r, std::move(list));
}

namespace {
std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  while (!s.empty()) {
    const size_t end = std::min(s.find(sep), s.size());
    if (end > 0) out.emplace_back(s.substr(0, end));
    s.remove_prefix(std::min(end + 1, s.size()));
  }
  return out;
}

// The value at a dotted path ("message_stats.publish_details.rate"), or null.
const Json* at_path(const Json& j, const std::vector<std::string>& path) {
  const Json* cur = &j;
  for (const auto& key : path) {
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(key);
    if (it == cur->end()) return nullptr;
    cur = &*it;
  }
  return cur;
}

// Sort order of two values of a sort key: missing first, numbers by value, strings by bytes.
bool value_less(const Json* a, const Json* b) {
  if (!a || !b) return !a && b;
  if (a->is_number() && b->is_number()) return a->get<double>() < b->get<double>();
  if (a->is_boolean() && b->is_boolean()) return !a->get<bool>() && b->get<bool>();
  if (a->is_string() && b->is_string()) return a->get_ref<const std::string&>() < b->get_ref<const std::string&>();
  return a->type() < b->type();
}

bool parse_positive(const std::string& s, size_t& out) {
  if (s.empty() || s.size() > 9) return false;
  out = 0;
  for (char ch : s) {
    if (ch < '0' || ch > '9') return false;
    out = out * 10 + static_cast<size_t>(ch - '0');
  }
  return out > 0;
}

// `page` and `page_size` (default 100, at most 500) with RabbitMQ's errors.
std::optional<Response> parse_page(const std::string& page_text, const std::string* size_text,
                                   size_t& page, size_t& page_size) {
  if (!parse_positive(page_text, page) || (size_text && !parse_positive(*size_text, page_size))) {
    return bad_request("Pagination parameters are invalid");
  }
  if (page_size > 500) {
    return error_response(400, "invalid_pagination_parameters",
                          "Invalid pagination parameters: page number " + std::to_string(page) +
                              ", page size " + std::to_string(page_size));
  }
  return std::nullopt;
}

bool contains_caseless(std::string_view hay, std::string_view needle) {
  auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
  });
  return it != hay.end();
}
}  // namespace

namespace {
struct LazyBuild {
  std::vector<LazyItem> items;
  size_t next = 0;
  Json out = Json::array();
  Request request;  // for the sort and columns applied at the end
  bool paged = false;
  Json envelope;    // paged: the page fields, "items" filled at the end
  std::function<void(Response)> reply;
  boost::asio::any_io_executor executor;
};

Response finish_lazy(LazyBuild& b) {
  if (!b.paged) return list_response(b.request, std::move(b.out));
  Request cols;
  if (auto it = b.request.query.find("columns"); it != b.request.query.end()) {
    cols.query["columns"] = it->second;
  }
  const size_t built = b.out.size();
  Response items = list_response(cols, std::move(b.out));
  b.envelope["item_count"] = built;
  b.envelope["items"] = Json::parse(items.body);
  return json_response(b.envelope);
}

// Builds up to `slice` more objects; true when all are built.
bool build_some(LazyBuild& b, size_t slice) {
  const size_t end = std::min(b.items.size(), b.next + slice);
  for (; b.next < end; ++b.next) {
    if (auto j = b.items[b.next].build()) b.out.push_back(std::move(*j));
  }
  return b.next == b.items.size();
}

void build_in_slices(std::shared_ptr<LazyBuild> b) {
  // A posted handler: nothing may escape it.
  try {
    if (build_some(*b, 2000)) return b->reply(finish_lazy(*b));
  } catch (const std::exception& e) {
    return b->reply(error_response(500, "internal_server_error", e.what()));
  }
  boost::asio::post(b->executor, [b] { build_in_slices(b); });
}
}  // namespace

Response lazy_list_per_vhost(Context& c, const Request& r,
                             const std::function<void(broker::VHost&, std::vector<LazyItem>&)>& add) {
  auto b = std::make_shared<LazyBuild>();
  if (r.path.size() == 2) {
    Response err;
    broker::VHost* v = accessible_vhost(c, r.path[1], err);
    if (!v) return err;
    add(*v, b->items);
  } else {
    for (const auto& [vname, v] : c.broker.vhosts()) {
      if (can_access_vhost(c, vname)) add(*v, b->items);
    }
  }
  b->request.query = r.query;
  auto q = [&](const char* key) -> const std::string* {
    auto it = r.query.find(key);
    return it == r.query.end() ? nullptr : &it->second;
  };
  const std::string* page_text = q("page");
  if (page_text) {
    // The page is picked here, on names and sort keys; only its objects are built.
    size_t page = 0, page_size = 100;
    if (auto bad = parse_page(*page_text, q("page_size"), page, page_size)) return *bad;
    const size_t total = b->items.size();
    if (const std::string* name = q("name"); name && !name->empty()) {
      std::function<bool(const std::string&)> match;
      std::optional<NameFilter> pattern;
      if (const std::string* re = q("use_regex"); re && *re == "true") {
        pattern = NameFilter::compile(*name);
        if (!pattern) return bad_request("Pagination parameters are invalid");
        match = [&](const std::string& n) { return pattern->matches(n); };
      } else {
        match = [&](const std::string& n) { return contains_caseless(n, *name); };
      }
      std::erase_if(b->items, [&](const LazyItem& i) { return !match(i.name); });
    }
    if (const std::string* sort = q("sort"); sort && !sort->empty()) {
      const bool reverse = q("sort_reverse") && *q("sort_reverse") == "true";
      std::vector<size_t> order(b->items.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::vector<Json> keys(b->items.size());
      if (*sort == "name" || *sort == "vhost") {
        for (size_t i = 0; i < keys.size(); ++i) {
          keys[i] = *sort == "name" ? b->items[i].name : b->items[i].vhost;
        }
      } else {
        const std::vector<std::string> path = split(*sort, '.');
        for (size_t i = 0; i < keys.size(); ++i) {
          if (b->items[i].key) {
            if (auto k = b->items[i].key(*sort)) {
              keys[i] = std::move(*k);
              continue;
            }
          }
          if (auto j = b->items[i].build()) {
            if (const Json* k = at_path(*j, path)) keys[i] = *k;
          }
        }
      }
      auto key = [&](size_t i) { return keys[i].is_null() ? nullptr : &keys[i]; };
      std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b2) {
        return reverse ? value_less(key(b2), key(a)) : value_less(key(a), key(b2));
      });
      std::vector<LazyItem> sorted;
      sorted.reserve(order.size());
      for (size_t i : order) sorted.push_back(std::move(b->items[i]));
      b->items = std::move(sorted);
    }
    const size_t filtered = b->items.size();
    const size_t page_count = (filtered + page_size - 1) / page_size;
    if ((page - 1) * page_size > filtered) {  // RabbitMQ's bound: one empty page past the end
      return error_response(400, "page_out_of_range",
                            "Page out of range, page: " + std::to_string(page) +
                                " page size: " + std::to_string(page_size) +
                                ", len: " + std::to_string(filtered));
    }
    const size_t from = std::min(filtered, (page - 1) * page_size);
    const size_t to = std::min(filtered, from + page_size);
    b->items.erase(b->items.begin() + static_cast<long>(to), b->items.end());
    b->items.erase(b->items.begin(), b->items.begin() + static_cast<long>(from));
    b->paged = true;
    b->envelope["filtered_count"] = filtered;
    b->envelope["item_count"] = 0;
    b->envelope["items"] = Json::array();
    b->envelope["page"] = page;
    b->envelope["page_count"] = page_count;
    b->envelope["page_size"] = page_size;
    b->envelope["total_count"] = total;
  }
  if (build_some(*b, 2000) || !c.reply_later) {
    build_some(*b, b->items.size());
    return finish_lazy(*b);
  }
  b->reply = c.reply_later;
  b->executor = c.broker.executor();
  boost::asio::post(b->executor, [b] { build_in_slices(b); });
  return deferred();
}

Response list_response(const Request& r, Json list) {
  auto q = [&](const char* key) -> const std::string* {
    auto it = r.query.find(key);
    return it == r.query.end() ? nullptr : &it->second;
  };
  const std::string* page_text = q("page");
  const std::string* sort = q("sort");
  const std::string* columns = q("columns");
  if (!page_text && !sort && !columns) return json_response(list);
  const size_t total = list.size();
  size_t page = 0, page_size = 100;
  if (page_text) {
    if (auto bad = parse_page(*page_text, q("page_size"), page, page_size)) return *bad;
    // As RabbitMQ: the name filter applies to paginated requests.
    if (const std::string* name = q("name"); name && !name->empty()) {
      const std::string* re = q("use_regex");
      Json kept = Json::array();
      if (re && *re == "true") {
        auto pattern = NameFilter::compile(*name);
        if (!pattern) return bad_request("Pagination parameters are invalid");
        for (auto& item : list) {
          const Json* n = at_path(item, {"name"});
          if (n && n->is_string() && pattern->matches(n->get_ref<const std::string&>())) {
            kept.push_back(std::move(item));
          }
        }
      } else {
        for (auto& item : list) {
          const Json* n = at_path(item, {"name"});
          if (n && n->is_string() && contains_caseless(n->get_ref<const std::string&>(), *name)) {
            kept.push_back(std::move(item));
          }
        }
      }
      list = std::move(kept);
    }
  }
  if (sort && !sort->empty()) {
    const std::vector<std::string> path = split(*sort, '.');
    const bool reverse = q("sort_reverse") && *q("sort_reverse") == "true";
    std::stable_sort(list.begin(), list.end(), [&](const Json& a, const Json& b) {
      return reverse ? value_less(at_path(b, path), at_path(a, path))
                     : value_less(at_path(a, path), at_path(b, path));
    });
  }
  const size_t filtered = list.size();
  if (page_text) {
    if ((page - 1) * page_size > filtered) {  // RabbitMQ's bound: one empty page past the end
      return error_response(400, "page_out_of_range",
                            "Page out of range, page: " + std::to_string(page) +
                                " page size: " + std::to_string(page_size) +
                                ", len: " + std::to_string(filtered));
    }
    const size_t from = (page - 1) * page_size, to = std::min(filtered, from + page_size);
    Json items = Json::array();
    for (size_t i = from; i < to; ++i) items.push_back(std::move(list[i]));
    list = std::move(items);
  }
  if (columns) {
    std::vector<std::vector<std::string>> paths;
    for (const auto& col : split(*columns, ',')) paths.push_back(split(col, '.'));
    for (auto& item : list) {
      Json picked = Json::object();
      for (const auto& path : paths) {
        const Json* v = at_path(item, path);
        if (!v || path.empty()) continue;
        Json* dst = &picked;
        for (size_t i = 0; i + 1 < path.size(); ++i) dst = &(*dst)[path[i]];
        (*dst)[path.back()] = *v;
      }
      item = std::move(picked);
    }
  }
  if (!page_text) return json_response(list);
  Json out;
  out["filtered_count"] = filtered;
  out["item_count"] = list.size();
  out["items"] = std::move(list);
  out["page"] = page;
  out["page_count"] = (filtered + page_size - 1) / page_size;
  out["page_size"] = page_size;
  out["total_count"] = total;
  return json_response(out);
}

}  // namespace warren::management
