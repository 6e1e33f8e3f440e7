#include "admin/commands.h"

#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>

namespace warren::admin {

using Json = nlohmann::ordered_json;

namespace {
constexpr int kUsage = 64, kDataErr = 65, kNoUser = 67, kUnavailable = 69, kSoftware = 70,
              kNoPerm = 77;

std::string q(const std::string& s) { return "\"" + s + "\""; }

// The API's error reason, or the status when the body has none.
std::string reason_of(const HttpResult& r) {
  Json j = Json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("reason") && j["reason"].is_string()) {
    std::string reason = j["reason"].get<std::string>();
    if (j.contains("error") && j["error"].is_string() && j["error"] == "not_authorised") {
      return "not_authorised: " + reason;
    }
    return reason;
  }
  return "HTTP status " + std::to_string(r.status);
}

[[noreturn]] void fail(const HttpResult& r) {
  const int code = r.status == 401 ? kNoPerm : r.status == 404 ? kUnavailable : kSoftware;
  std::string reason = reason_of(r);
  if (r.status == 401 && reason.find("Login failed") != std::string::npos) {
    reason += " (use --username and --password, or run as the broker's user so that warrenctl "
              "can read warrenctl.json in its data directory)";
  }
  throw CommandError{reason, code};
}

struct Ctx {
  HttpClient& http;
  const std::vector<std::string>& args;
  const Options& opts;
  std::ostream& out;

  HttpResult call(const std::string& method, const std::string& path, const Json& body = nullptr,
                  const std::string& reason = {}) {
    return http.request(method, "/api" + path, body.is_null() ? std::string() : body.dump(), reason);
  }
  Json get(const std::string& path) {
    HttpResult r = call("GET", path);
    if (r.status != 200) fail(r);
    return Json::parse(r.body);
  }
  void ok_or_fail(const HttpResult& r) {
    if (r.status >= 300) fail(r);
  }
  void info(const std::string& line) {
    if (!opts.quiet && !opts.json) out << line << "\n";
  }
  const std::string& arg(size_t i, const char* what) {
    if (i >= args.size()) throw CommandError{std::string("missing argument: ") + what, kUsage};
    return args[i];
  }
  std::string vhost_seg() const { return encode_segment(opts.vhost); }
};

// rabbitmqctl's rendering of a value in its tab-separated output.
std::string cell(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_null()) return "";
  if (v.is_array()) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + cell(v[i]);
    return s + "]";
  }
  if (v.is_object()) {
    std::string s = "[";
    bool first = true;
    for (const auto& [k, x] : v.items()) {
      s += (first ? "" : ", ") + std::string("{\"") + k + "\"," + (x.is_string() ? q(x.get<std::string>()) : cell(x)) + "}";
      first = false;
    }
    return s + "]";
  }
  return v.dump();
}

// Prints rows with the chosen columns: a header and tab-separated values, or a JSON array.
void print_table(Ctx& c, const std::vector<std::string>& columns, const std::vector<Json>& rows) {
  if (c.opts.json) {
    Json a = Json::array();
    for (const auto& r : rows) {
      Json o = Json::object();
      for (const auto& col : columns) o[col] = r.contains(col) ? r.at(col) : Json();
      a.push_back(o);
    }
    c.out << a.dump() << "\n";
    return;
  }
  // The header row stays under -q, as rabbitmqctl keeps it (--no-table-headers drops it there).
  for (size_t i = 0; i < columns.size(); ++i) c.out << (i ? "\t" : "") << columns[i];
  c.out << "\n";
  for (const auto& r : rows) {
    for (size_t i = 0; i < columns.size(); ++i) {
      c.out << (i ? "\t" : "") << (r.contains(columns[i]) ? cell(r.at(columns[i])) : "");
    }
    c.out << "\n";
  }
}

// Columns given on the command line after `skip` positional arguments, or the defaults.
std::vector<std::string> columns(Ctx& c, size_t skip, std::vector<std::string> defaults) {
  if (c.args.size() <= skip) return defaults;
  return std::vector<std::string>(c.args.begin() + static_cast<long>(skip), c.args.end());
}

Json user_or_fail(Ctx& c, const std::string& user) {
  HttpResult r = c.call("GET", "/users/" + encode_segment(user));
  if (r.status == 404) throw CommandError{"User " + q(user) + " does not exist", kNoUser};
  if (r.status != 200) fail(r);
  return Json::parse(r.body);
}

// set_policy / set_operator_policy NAME PATTERN DEFINITION.
void set_policy(Ctx& c, const std::string& path, const char* what) {
  const std::string& name = c.arg(0, "name");
  const std::string& pattern = c.arg(1, "pattern");
  const std::string& text = c.arg(2, "definition");
  c.info(std::string("Setting ") + what + " " + q(name) + " for pattern " + q(pattern) + " to " +
         q(text) + " with priority " + q(std::to_string(c.opts.priority)) + " for vhost " +
         q(c.opts.vhost) + " ...");
  Json def = Json::parse(text, nullptr, false);
  if (!def.is_object()) throw CommandError{"could not parse JSON document: " + text, kDataErr};
  HttpResult r = c.call("PUT", path + c.vhost_seg() + "/" + encode_segment(name),
                        {{"pattern", pattern}, {"definition", def},
                         {"priority", c.opts.priority}, {"apply-to", c.opts.apply_to}});
  if (r.status == 404) throw CommandError{"Virtual host " + q(c.opts.vhost) + " does not exist", kUnavailable};
  if (r.status == 400) throw CommandError{reason_of(r), kUnavailable};
  c.ok_or_fail(r);
}

void clear_policy(Ctx& c, const std::string& path, const char* what) {
  const std::string& name = c.arg(0, "name");
  c.info(std::string("Clearing ") + what + " " + q(name) + " on vhost " + q(c.opts.vhost) + " ...");
  HttpResult r = c.call("DELETE", path + c.vhost_seg() + "/" + encode_segment(name));
  if (r.status == 404) throw CommandError{"Parameter does not exist", kUnavailable};
  c.ok_or_fail(r);
}

// rabbitmqctl's columns; the definition as compact JSON.
void list_policies(Ctx& c, const std::string& path, const char* heading) {
  c.info(std::string("Listing ") + heading + " for vhost " + q(c.opts.vhost) + " ...");
  std::vector<Json> rows;
  for (const auto& p : c.get(path + c.vhost_seg())) {
    Json row = p;
    if (!c.opts.json) row["definition"] = p["definition"].dump();
    rows.push_back(row);
  }
  print_table(c, {"vhost", "name", "pattern", "apply-to", "definition", "priority"}, rows);
}

using Handler = std::function<void(Ctx&)>;

const std::map<std::string, Handler>& handlers() {
  static const std::map<std::string, Handler> h = {
      {"add_user",
       [](Ctx& c) {
         const std::string& user = c.arg(0, "username");
         const std::string& pw = c.arg(1, "password");
         c.info("Adding user " + q(user) + " ...");
         if (c.call("GET", "/users/" + encode_segment(user)).status == 200) {
           throw CommandError{"User " + q(user) + " already exists", kSoftware};
         }
         c.ok_or_fail(c.call("PUT", "/users/" + encode_segment(user), {{"password", pw}, {"tags", ""}}));
         c.info("Done. Don't forget to grant the user permissions to some virtual hosts! See "
                "'warrenctl help set_permissions' to learn more.");
       }},
      {"delete_user",
       [](Ctx& c) {
         const std::string& user = c.arg(0, "username");
         c.info("Deleting user " + q(user) + " ...");
         HttpResult r = c.call("DELETE", "/users/" + encode_segment(user));
         if (r.status == 404) throw CommandError{"User " + q(user) + " does not exist", kNoUser};
         c.ok_or_fail(r);
       }},
      {"change_password",
       [](Ctx& c) {
         const std::string& user = c.arg(0, "username");
         const std::string& pw = c.arg(1, "password");
         c.info("Changing password for user " + q(user) + " ...");
         Json u = user_or_fail(c, user);
         c.ok_or_fail(c.call("PUT", "/users/" + encode_segment(user), {{"password", pw}, {"tags", u["tags"]}}));
       }},
      {"authenticate_user",
       [](Ctx& c) {
         const std::string& user = c.arg(0, "username");
         const std::string& pw = c.arg(1, "password");
         c.info("Authenticating user " + q(user) + " ...");
         HttpClient as_user(c.http.host(), c.http.port(), user, pw);
         HttpResult r = as_user.request("GET", "/api/whoami");
         // A valid user without a management tag is refused the API, but not the login.
         if (r.status == 200 || (r.status == 401 && reason_of(r).find("Login failed") == std::string::npos)) {
           c.info("Success");
           return;
         }
         throw CommandError{"Error: failed to authenticate user " + q(user) + ": user '" + user +
                                "' - invalid credentials",
                            kDataErr};
       }},
      {"set_user_tags",
       [](Ctx& c) {
         const std::string& user = c.arg(0, "username");
         std::vector<std::string> tags(c.args.begin() + 1, c.args.end());
         std::string shown;
         for (size_t i = 0; i < tags.size(); ++i) shown += (i ? ", " : "") + tags[i];
         c.info("Setting tags for user " + q(user) + " to [" + shown + "] ...");
         Json u = user_or_fail(c, user);
         c.ok_or_fail(c.call("PUT", "/users/" + encode_segment(user),
                             {{"password_hash", u["password_hash"]},
                              {"hashing_algorithm", u["hashing_algorithm"]},
                              {"tags", tags}}));
       }},
      {"list_users",
       [](Ctx& c) {
         c.info("Listing users ...");
         std::vector<Json> rows;
         for (const auto& u : c.get("/users")) rows.push_back({{"user", u["name"]}, {"tags", u["tags"]}});
         print_table(c, {"user", "tags"}, rows);
       }},
      {"add_vhost",
       [](Ctx& c) {
         const std::string& v = c.arg(0, "vhost");
         c.info("Adding vhost " + q(v) + " ...");
         Json body = Json::object();
         if (!c.opts.description.empty()) body["description"] = c.opts.description;
         c.ok_or_fail(c.call("PUT", "/vhosts/" + encode_segment(v), body));
       }},
      {"delete_vhost",
       [](Ctx& c) {
         const std::string& v = c.arg(0, "vhost");
         c.info("Deleting vhost " + q(v) + " ...");
         HttpResult r = c.call("DELETE", "/vhosts/" + encode_segment(v));
         if (r.status == 404) throw CommandError{"Virtual host " + q(v) + " does not exist", kNoUser};
         c.ok_or_fail(r);
       }},
      {"list_vhosts",
       [](Ctx& c) {
         c.info("Listing vhosts ...");
         std::vector<Json> rows;
         for (const auto& v : c.get("/vhosts")) rows.push_back(v);
         print_table(c, columns(c, 0, {"name"}), rows);
       }},
      {"set_permissions",
       [](Ctx& c) {
         const std::string& user = c.arg(0, "username");
         c.info("Setting permissions for user " + q(user) + " in vhost " + q(c.opts.vhost) + " ...");
         HttpResult r = c.call("PUT", "/permissions/" + c.vhost_seg() + "/" + encode_segment(user),
                               {{"configure", c.arg(1, "conf")}, {"write", c.arg(2, "write")},
                                {"read", c.arg(3, "read")}});
         if (r.status == 404) {
           throw CommandError{"No such user " + q(user) + " or virtual host " + q(c.opts.vhost), kNoUser};
         }
         c.ok_or_fail(r);
       }},
      {"clear_permissions",
       [](Ctx& c) {
         const std::string& user = c.arg(0, "username");
         c.info("Clearing permissions for user " + q(user) + " in vhost " + q(c.opts.vhost) + " ...");
         HttpResult r = c.call("DELETE", "/permissions/" + c.vhost_seg() + "/" + encode_segment(user));
         if (r.status != 404) c.ok_or_fail(r);  // clearing nothing succeeds, as in rabbitmqctl
       }},
      {"list_permissions",
       [](Ctx& c) {
         c.info("Listing permissions for vhost " + q(c.opts.vhost) + " ...");
         std::vector<Json> rows;
         for (const auto& p : c.get("/permissions"))
           if (p["vhost"] == c.opts.vhost) rows.push_back(p);
         print_table(c, {"user", "configure", "write", "read"}, rows);
       }},
      {"list_user_permissions",
       [](Ctx& c) {
         const std::string& user = c.arg(0, "username");
         c.info("Listing permissions for user " + q(user) + " ...");
         HttpResult r = c.call("GET", "/users/" + encode_segment(user) + "/permissions");
         if (r.status == 404) throw CommandError{"User " + q(user) + " does not exist", kNoUser};
         if (r.status != 200) fail(r);
         std::vector<Json> rows;
         for (const auto& p : Json::parse(r.body)) rows.push_back(p);
         print_table(c, {"vhost", "configure", "write", "read"}, rows);
       }},
      {"set_topic_permissions",
       [](Ctx& c) {
         const std::string& user = c.arg(0, "username");
         const std::string& x = c.arg(1, "exchange");
         c.info("Setting topic permissions on " + q(x) + " for user " + q(user) + " in vhost " +
                q(c.opts.vhost) + " ...");
         HttpResult r = c.call("PUT", "/topic-permissions/" + c.vhost_seg() + "/" + encode_segment(user),
                               {{"exchange", x}, {"write", c.arg(2, "write")}, {"read", c.arg(3, "read")}});
         if (r.status == 404) {
           throw CommandError{"No such user " + q(user) + " or virtual host " + q(c.opts.vhost), kNoUser};
         }
         c.ok_or_fail(r);
       }},
      {"clear_topic_permissions",
       [](Ctx& c) {
         const std::string& user = c.arg(0, "username");
         c.info("Clearing topic permissions for user " + q(user) + " in vhost " + q(c.opts.vhost) + " ...");
         std::string path = "/topic-permissions/" + c.vhost_seg() + "/" + encode_segment(user);
         if (c.args.size() > 1) path += "?exchange=" + encode_segment(c.args[1]);
         HttpResult r = c.call("DELETE", path);
         if (r.status != 404) c.ok_or_fail(r);
       }},
      {"list_topic_permissions",
       [](Ctx& c) {
         c.info("Listing topic permissions for vhost " + q(c.opts.vhost) + " ...");
         std::vector<Json> rows;
         for (const auto& p : c.get("/topic-permissions/" + c.vhost_seg())) rows.push_back(p);
         print_table(c, {"user", "exchange", "write", "read"}, rows);
       }},
      {"set_vhost_limits",
       [](Ctx& c) {
         const std::string& text = c.arg(0, "definition");
         c.info("Setting vhost limits to " + q(text) + " for vhost " + q(c.opts.vhost) + " ...");
         Json limits = Json::parse(text, nullptr, false);
         if (!limits.is_object()) throw CommandError{"could not parse JSON document: " + text, kDataErr};
         for (const auto& [k, v] : limits.items()) {
           c.ok_or_fail(c.call("PUT", "/vhost-limits/" + c.vhost_seg() + "/" + encode_segment(k),
                               {{"value", v}}));
         }
       }},
      {"list_vhost_limits",
       [](Ctx& c) {
         c.info("Listing limits for vhost " + q(c.opts.vhost) + " ...");
         Json list = c.get("/vhost-limits/" + c.vhost_seg());
         Json value = list.empty() ? Json::object() : list[0]["value"];
         c.out << value.dump() << "\n";
       }},
      {"list_queues",
       [](Ctx& c) {
         c.info("Timeout: 60.0 seconds ...");
         c.info("Listing queues for vhost " + c.opts.vhost + " ...");
         std::vector<Json> rows;
         for (const auto& x : c.get("/queues/" + c.vhost_seg())) rows.push_back(x);
         print_table(c, columns(c, 0, {"name", "messages"}), rows);
       }},
      {"list_exchanges",
       [](Ctx& c) {
         c.info("Listing exchanges for vhost " + c.opts.vhost + " ...");
         std::vector<Json> rows;
         for (const auto& x : c.get("/exchanges/" + c.vhost_seg())) rows.push_back(x);
         print_table(c, columns(c, 0, {"name", "type"}), rows);
       }},
      {"list_bindings",
       [](Ctx& c) {
         c.info("Listing bindings for vhost " + c.opts.vhost + "...");
         std::vector<Json> rows;
         for (const auto& b : c.get("/bindings/" + c.vhost_seg())) {
           Json r = b;
           r["source_name"] = b["source"];
           r["source_kind"] = "exchange";
           r["destination_name"] = b["destination"];
           r["destination_kind"] = b["destination_type"];
           rows.push_back(r);
         }
         print_table(c, columns(c, 0, {"source_name", "source_kind", "destination_name",
                                       "destination_kind", "routing_key", "arguments"}),
                     rows);
       }},
      {"list_connections",
       [](Ctx& c) {
         c.info("Listing connections ...");
         std::vector<Json> rows;
         for (const auto& x : c.get("/connections")) {
           Json r = x;
           r["pid"] = x["name"];
           rows.push_back(r);
         }
         print_table(c, columns(c, 0, {"user", "peer_host", "peer_port", "state"}), rows);
       }},
      {"list_channels",
       [](Ctx& c) {
         c.info("Listing channels ...");
         std::vector<Json> rows;
         for (const auto& x : c.get("/channels")) {
           Json r = x;
           r["pid"] = x["name"];
           rows.push_back(r);
         }
         print_table(c, columns(c, 0, {"pid", "user", "consumer_count", "messages_unacknowledged"}), rows);
       }},
      {"list_consumers",
       [](Ctx& c) {
         c.info("Listing consumers in vhost " + c.opts.vhost + " ...");
         std::vector<Json> rows;
         for (const auto& x : c.get("/consumers/" + c.vhost_seg())) {
           Json r = x;
           r["queue_name"] = x["queue"]["name"];
           r["channel_pid"] = x["channel_details"]["name"];
           rows.push_back(r);
         }
         print_table(c, columns(c, 0, {"queue_name", "channel_pid", "consumer_tag", "ack_required",
                                       "prefetch_count", "active", "arguments"}),
                     rows);
       }},
      {"close_connection",
       [](Ctx& c) {
         const std::string& name = c.arg(0, "connection name");
         const std::string& why = c.arg(1, "explanation");
         c.info("Closing connection " + name + ", reason: " + why + "...");
         HttpResult r = c.call("DELETE", "/connections/" + encode_segment(name), nullptr, why);
         if (r.status == 404) throw CommandError{"connection " + q(name) + " not found", kUnavailable};
         c.ok_or_fail(r);
       }},
      {"purge_queue",
       [](Ctx& c) {
         const std::string& queue = c.arg(0, "queue");
         c.info("Purging queue '" + queue + "' in vhost '" + c.opts.vhost + "' ...");
         HttpResult r = c.call("DELETE", "/queues/" + c.vhost_seg() + "/" + encode_segment(queue) + "/contents");
         if (r.status == 404) throw CommandError{"not_found", kUnavailable};
         c.ok_or_fail(r);
       }},
      {"delete_queue",
       [](Ctx& c) {
         const std::string& queue = c.arg(0, "queue");
         c.info("Deleting queue '" + queue + "' on vhost '" + c.opts.vhost + "' ...");
         const std::string path = "/queues/" + c.vhost_seg() + "/" + encode_segment(queue);
         HttpResult g = c.call("GET", path);
         if (g.status == 404) throw CommandError{"Queue not found", kUsage};
         if (g.status != 200) fail(g);
         const Json qj = Json::parse(g.body);
         std::string query;
         if (c.opts.if_empty) query += "if-empty=true";
         if (c.opts.if_unused) query += std::string(query.empty() ? "" : "&") + "if-unused=true";
         HttpResult r = c.call("DELETE", path + (query.empty() ? "" : "?" + query));
         if (r.status == 404) throw CommandError{"Queue not found", kUsage};
         c.ok_or_fail(r);
         c.out << "Queue was successfully deleted with " << qj.value("messages", 0) << " messages\n";
       }},
      {"set_policy", [](Ctx& c) { set_policy(c, "/policies/", "policy"); }},
      {"clear_policy", [](Ctx& c) { clear_policy(c, "/policies/", "policy"); }},
      {"list_policies", [](Ctx& c) { list_policies(c, "/policies/", "policies"); }},
      {"set_operator_policy",
       [](Ctx& c) { set_policy(c, "/operator-policies/", "operator policy"); }},
      {"clear_operator_policy",
       [](Ctx& c) { clear_policy(c, "/operator-policies/", "operator policy"); }},
      {"list_operator_policies",
       [](Ctx& c) { list_policies(c, "/operator-policies/", "operator policy overrides"); }},
      {"export_definitions",
       [](Ctx& c) {
         const std::string& path = c.arg(0, "file path");
         if (path != "-") c.info("Exporting definitions in JSON to a file at " + q(path) + " ...");
         Json defs = c.get("/definitions");
         if (path == "-") {
           c.out << defs.dump() << "\n";
           return;
         }
         std::ofstream f(path, std::ios::binary | std::ios::trunc);
         if (!(f << defs.dump(2) << "\n") || !f.flush()) {
           throw CommandError{"No permissions to write to file " + path + " or its parent directory",
                              kDataErr};
         }
       }},
      {"import_definitions",
       [](Ctx& c) {
         const std::string& path = c.arg(0, "file path");
         std::stringstream text;
         if (path == "-") {
           text << std::cin.rdbuf();
         } else {
           std::ifstream f(path, std::ios::binary);
           if (!f) throw CommandError{"Bad argument: File " + path + " does not exist", kDataErr};
           text << f.rdbuf();
           c.info("Importing definitions in JSON from a file at " + q(path) + " ...");
         }
         Json defs = Json::parse(text.str(), nullptr, false);
         if (!defs.is_object()) throw CommandError{"could not parse JSON document", kDataErr};
         HttpResult r = c.call("POST", "/definitions", defs);
         if (r.status == 400) throw CommandError{reason_of(r), kDataErr};
         c.ok_or_fail(r);
         c.info("Successfully started definition import. This process is asynchronous and can "
                "take some time.");
       }},
      {"status",
       [](Ctx& c) {
         Json o = c.get("/overview");
         if (c.opts.json) {
           c.out << o.dump() << "\n";
           return;
         }
         c.info("Status of node " + o.value("node", std::string()) + " ...");
         c.out << "Runtime\n\n"
               << "Node name: " << o.value("node", std::string()) << "\n"
               << "Product name: Warren (RabbitMQ-compatible)\n"
               << "Product version: " << o.value("warren_version", std::string()) << "\n"
               << "RabbitMQ version: " << o.value("rabbitmq_version", std::string()) << "\n\n"
               << "Listeners\n\n";
         for (const auto& l : o["listeners"]) {
           c.out << "Interface: " << l.value("ip_address", std::string()) << ", port: "
                 << l.value("port", 0) << ", protocol: " << l.value("protocol", std::string()) << "\n";
         }
         c.out << "\nTotals\n\n";
         for (const auto& [k, v] : o["object_totals"].items()) c.out << k << ": " << v.dump() << "\n";
         for (const auto& [k, v] : o["queue_totals"].items()) c.out << k << ": " << v.dump() << "\n";
       }},
  };
  return h;
}
}  // namespace

const std::vector<std::string>& command_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& [k, v] : handlers()) n.push_back(k);
    return n;
  }();
  return names;
}

void run_command(HttpClient& http, const std::string& command, const std::vector<std::string>& args,
                 const Options& opts, std::ostream& out) {
  auto it = handlers().find(command);
  if (it == handlers().end()) throw CommandError{"unknown command '" + command + "'", kUsage};
  Ctx c{http, args, opts, out};
  it->second(c);
}

}  // namespace warren::admin
