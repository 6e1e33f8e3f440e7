// warrenctl's commands: rabbitmqctl's names, arguments, messages and output columns, each
// done with management API calls (admin/http_client.h).
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "admin/http_client.h"

namespace warren::admin {

struct Options {
  std::string vhost = "/";
  bool quiet = false;    // -q: no "Listing ..." lines
  bool json = false;     // --formatter json
  bool if_empty = false;
  bool if_unused = false;
  std::string description;
  int priority = 0;              // set_policy
  std::string apply_to = "all";  // set_policy: queues, exchanges or all
};

// A failure: one line for stderr and rabbitmqctl's exit code.
struct CommandError {
  std::string message;
  int exit_code = 70;
};

// Names of every command (for --help).
const std::vector<std::string>& command_names();

// Runs `command` with `args`, printing to `out`. Throws CommandError or HttpError.
void run_command(HttpClient& http, const std::string& command, const std::vector<std::string>& args,
                 const Options& opts, std::ostream& out);

}  // namespace warren::admin
