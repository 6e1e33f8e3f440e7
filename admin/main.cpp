// warrenctl: rabbitmqctl's commands for Warren, over the management API on loopback.
//
//   warrenctl [--host H] [--http-port N] [--username U --password P] [-p VHOST]
//             [--formatter json] [-q] COMMAND [ARGS...]
//
// Without --username it reads warrenctl.json (port and a token the broker writes for its
// own user) from the data directory, else uses guest/guest. Failures print one line
// ("Error: ...") on stderr and exit with rabbitmqctl's codes.
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "admin/commands.h"

namespace po = boost::program_options;
using namespace warren::admin;

namespace {
std::string default_data_dir() {
  if (const char* d = std::getenv("WARREN_DATA_DIR"); d && *d) return d;
  if (geteuid() == 0) return "/var/lib/warren";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.local/share/warren";
  return "warren-data";
}
}  // namespace

int main(int argc, char** argv) {
  po::options_description desc("Usage: warrenctl [options] COMMAND [ARGS...]\nOptions");
  desc.add_options()("help,h", "show this help")
      ("host", po::value<std::string>()->default_value("127.0.0.1"), "broker host")
      ("http-port", po::value<uint16_t>(), "management API port (default 15672)")
      ("username,u", po::value<std::string>(), "management user")
      ("password", po::value<std::string>(), "its password")
      ("data-dir", po::value<std::string>(), "the broker's data directory (for warrenctl.json)")
      ("vhost,p", po::value<std::string>()->default_value("/"), "virtual host")
      ("formatter", po::value<std::string>()->default_value("table"), "table or json")
      ("quiet,q", po::bool_switch(), "no informational messages")
      ("silent,s", po::bool_switch(), "same as -q")
      ("node,n", po::value<std::string>(), "ignored (rabbitmqctl compatibility)")
      ("description", po::value<std::string>(), "add_vhost: description")
      ("if-empty", po::bool_switch(), "delete_queue: only when empty")
      ("if-unused", po::bool_switch(), "delete_queue: only when unused")
      ("priority", po::value<int>()->default_value(0), "set_policy: priority")
      ("apply-to", po::value<std::string>()->default_value("all"),
       "set_policy: queues, exchanges or all")
      ("command", po::value<std::vector<std::string>>(), "command and arguments");
  po::positional_options_description pos;
  pos.add("command", -1);
  po::variables_map vm;
  try {
    // Patterns like "^a" or "-" must stay positional arguments once the command began.
    po::store(po::command_line_parser(argc, argv).options(desc).positional(pos)
                  .style(po::command_line_style::default_style &
                         ~po::command_line_style::allow_guessing)
                  .run(),
              vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "Error: " << e.what() << "\n";
    return 64;
  }
  if (vm.count("help") || !vm.count("command")) {
    std::cout << desc << "\nCommands:";
    for (const auto& c : command_names()) std::cout << " " << c;
    std::cout << "\n";
    return vm.count("help") ? 0 : 64;
  }
  auto words = vm["command"].as<std::vector<std::string>>();
  const std::string command = words.front();
  words.erase(words.begin());

  Options opts;
  opts.vhost = vm["vhost"].as<std::string>();
  opts.quiet = vm["quiet"].as<bool>() || vm["silent"].as<bool>();
  opts.json = vm["formatter"].as<std::string>() == "json";
  opts.if_empty = vm["if-empty"].as<bool>();
  opts.if_unused = vm["if-unused"].as<bool>();
  opts.priority = vm["priority"].as<int>();
  opts.apply_to = vm["apply-to"].as<std::string>();
  if (vm.count("description")) opts.description = vm["description"].as<std::string>();

  uint16_t port = 15672;
  std::string user = "guest", password = "guest";
  if (vm.count("username")) {
    user = vm["username"].as<std::string>();
    password = vm.count("password") ? vm["password"].as<std::string>() : "";
  } else {
    // The local credentials the broker wrote, when readable and for the port asked for.
    const std::string dir = vm.count("data-dir") ? vm["data-dir"].as<std::string>() : default_data_dir();
    std::ifstream f(dir + "/warrenctl.json");
    auto j = nlohmann::json::parse(f, nullptr, false);
    if (f && j.is_object() && j.contains("port") && j.contains("token") &&
        (!vm.count("http-port") || j["port"] == vm["http-port"].as<uint16_t>())) {
      port = j["port"].get<uint16_t>();
      user = "warrenctl";
      password = j["token"].get<std::string>();
    }
  }
  if (vm.count("http-port")) port = vm["http-port"].as<uint16_t>();

  HttpClient http(vm["host"].as<std::string>(), port, user, password);
  try {
    run_command(http, command, words, opts, std::cout);
  } catch (const CommandError& e) {
    std::cout.flush();
    std::cerr << (e.message.rfind("Error", 0) == 0 ? "" : "Error: ") << e.message << "\n";
    return e.exit_code;
  } catch (const HttpError& e) {
    std::cout.flush();
    std::cerr << "Error: " << e.what() << "\n";
    return 69;
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "Error: " << e.what() << "\n";
    return 70;
  }
  return 0;
}
