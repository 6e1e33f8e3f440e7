// The management API's request and response types, and helpers shared by its resources.
//
// Every resource is a pure function from (Context, Request) to Response, run on the broker's
// io_context thread (the broker state is single-threaded), so a handler never blocks: it
// reads or changes broker state and returns. Paths, JSON field names, status codes and error
// bodies ({"error": ..., "reason": ...}) follow RabbitMQ's management plugin.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "amqp/field_table.h"
#include "auth/permission.h"
#include "auth/user_store.h"
#include "broker/message_stats.h"
#include "common/config.h"

namespace warren::broker {
class Broker;
class Connection;
class Channel;
class VHost;
class Queue;
struct Exchange;
struct Policy;
}  // namespace warren::broker

namespace warren::management {

using Json = nlohmann::ordered_json;

enum class Method { kGet, kPut, kPost, kDelete, kHead, kOther };

struct Request {
  Method method = Method::kGet;
  // Percent-decoded path segments after "/api" ("/api/queues/%2F/q" -> {"queues", "/", "q"}).
  std::vector<std::string> path;
  std::map<std::string, std::string> query;
  std::string body;
  std::string reason_header;  // X-Reason (connection close)
};

struct Response {
  unsigned status = 200;
  std::string body;  // JSON text, or empty
  std::string content_type = "application/json";
  std::string location;  // Location header (201 of a new binding)
};

struct Context {
  broker::Broker& broker;
  const auth::User& user;
  // warrenctl on this machine (HttpServer::local_token): like rabbitmqctl, it is not bound
  // by the AMQP permissions of any user.
  bool local_operator = false;
  // For an answer that cannot be given at once (a get waiting for a paged-out queue head):
  // the handler returns deferred() and later calls this, on the broker's thread.
  std::function<void(Response)> reply_later;
};

Response json_response(const Json& j, unsigned status = 200);
Response error_response(unsigned status, std::string_view error, std::string_view reason);
Response not_found();
Response method_not_allowed();
Response no_content();
// "The answer comes later through Context::reply_later" (status 0 is never sent).
Response deferred();
Response created();
Response bad_request(std::string_view reason);
// 401 {"error":"not_authorised","reason":"Not administrator user"} and the like.
Response not_authorised(std::string_view reason);

// Parses the body as a JSON object; nullopt (and a 400 "not_json" in `err`) otherwise. An
// empty body is an empty object.
std::optional<Json> parse_body(const Request& r, Response& err);

// Tags: administrator sees and changes everything; monitoring sees everything; management
// and policymaker see the vhosts they have permissions in.
bool is_admin(const auth::User& u);
bool is_monitor(const auth::User& u);
bool can_access_vhost(const Context& c, std::string_view vhost);
// The vhost a path names, or null with the answer in `err`: 404 when there is none, 401
// when the caller may not see it.
broker::VHost* accessible_vhost(Context& c, const std::string& name, Response& err);
// GET /api/RESOURCE[/VHOST]: `add` appends one vhost's objects; every vhost the caller may
// see, or only the one the path names.
Response list_per_vhost(Context& c, const Request& r,
                        const std::function<void(broker::VHost&, Json&)>& add);
// A list endpoint's answer with RabbitMQ's query parameters applied: `sort` (a dotted field
// path) and `sort_reverse`, `columns` (dotted paths to keep), and `page`/`page_size` (at
// most 500) with the `name` filter (`use_regex`), answered as {"items": [...], "page": ...}.
Response list_response(const Request& r, Json list);
// A list item whose JSON is built only when needed: a page of 100 out of 100,000 queues
// builds 100 objects. `build` returns nullopt when the object went away meanwhile.
struct LazyItem {
  std::string vhost, name;
  std::function<std::optional<Json>()> build;
  // A cheap sort key for the fields most often sorted on (null: use build()).
  std::function<std::optional<Json>(const std::string& field)> key;
};
// list_per_vhost for lazy items: filters, sorts by name or vhost and pages without building
// anything else; a sort on another field builds one object at a time for its key. A long
// list is built in slices between which the broker goes on with its other work.
Response lazy_list_per_vhost(Context& c, const Request& r,
                             const std::function<void(broker::VHost&, std::vector<LazyItem>&)>& add);
// 401 with the AMQP refusal text unless the caller may `access` the resource (queues.cpp).
std::optional<Response> refuse_unless(Context& c, std::string_view vhost, auth::Access access,
                                      std::string_view kind, std::string_view name);
// A user as /api/users lists it and definitions export it (users.cpp).
Json user_json(const auth::User& u);
// Permission objects as /api/permissions lists them (permissions.cpp).
Json permission_json(const std::string& user, const std::string& vhost, const auth::Permission& p);
Json topic_permission_json(const std::string& user, const std::string& vhost,
                           const std::string& exchange, const auth::TopicPermission& p);

// POST /api/exchanges/{vhost}/{name}/publish and /api/queues/{vhost}/{name}/get
// (messages.cpp).
Response publish_message(Context& c, const Request& r, broker::VHost& v, const std::string& xname);
Response get_messages(Context& c, const Request& r, const std::string& vname,
                      const std::string& qname);

// RabbitMQ's message_stats object: each counter with its "_details": {"rate": r} over the
// last statistics interval, the fields RabbitMQ shows for that kind of object.
enum class StatsOf { kOverview, kQueue, kExchange, kChannel };
Json message_stats_json(const broker::MessageStats& s, StatsOf of);
// Adds `name` and `name_details` {"rate": rate} to `j`.
void add_with_rate(Json& j, const char* name, uint64_t value, double rate);

// FieldTable <-> JSON as RabbitMQ renders arguments and client properties.
Json table_to_json(const amqp::FieldTable& t);
// nullopt when a value has no AMQP type (null).
std::optional<amqp::FieldTable> json_to_table(const Json& j);

// RabbitMQ accepts tags as "a,b" or as a list.
std::vector<std::string> parse_tags(const Json& j);

std::string node_name();
// The listeners as /api/overview and /api/nodes list them.
Json listeners_json(const common::Config& cfg);

// Reads a boolean field that RabbitMQ also accepts as "true"/"false".
bool json_bool(const Json& body, const char* key, bool fallback);

// Resource handlers (one file each).
Response handle_overview(Context& c, const Request& r);
Response handle_nodes(Context& c, const Request& r);
int64_t now_ms_since(int64_t start_ms);
Response handle_whoami(Context& c, const Request& r);
Response handle_vhosts(Context& c, const Request& r);
Response handle_users(Context& c, const Request& r);
Response handle_permissions(Context& c, const Request& r);
Response handle_topic_permissions(Context& c, const Request& r);
Response handle_vhost_limits(Context& c, const Request& r);
Response handle_queues(Context& c, const Request& r);
Response handle_exchanges(Context& c, const Request& r);
Response handle_bindings(Context& c, const Request& r);
// GET /api/exchanges/{vhost}/{name}/bindings/{source|destination} and
// /api/queues/{vhost}/{name}/bindings (bindings.cpp).
Response handle_exchange_bindings(Context& c, const Request& r, broker::VHost& v,
                                  broker::Exchange& x);
Response handle_queue_bindings(Context& c, const Request& r, broker::VHost& v, broker::Queue& q);
Response handle_connections(Context& c, const Request& r);
Response handle_channels(Context& c, const Request& r);
Response handle_consumers(Context& c, const Request& r);
Response handle_policies(Context& c, const Request& r);
Response handle_operator_policies(Context& c, const Request& r);
Response handle_definitions(Context& c, const Request& r);
Response handle_aliveness(Context& c, const Request& r);
Response handle_health(Context& c, const Request& r);
// GET /metrics (per_object = false) and /metrics/per-object: Prometheus text, no auth.
Response handle_metrics(broker::Broker& b, bool per_object);

// A policy as RabbitMQ lists it, and one built from RabbitMQ's PUT body (or a definitions
// file entry): nullopt with RabbitMQ's 400 in `err` when it is invalid.
Json policy_json(const std::string& vhost, const broker::Policy& p);
std::optional<broker::Policy> policy_from_json(const std::string& name, const Json& body,
                                               Response& err, bool operator_policy = false);

// Imports a definitions file, or each .json file of a directory (rabbitmq.conf's
// load_definitions), as an administrator would through POST /api/definitions; false with a
// one-line reason in `error`.
bool load_definitions_file(broker::Broker& broker, const std::string& path, std::string& error);

// JSON of one connection / channel (shared by connections, channels and consumers).
Json connection_json(broker::Connection& conn);
Json channel_json(broker::Channel& ch);
Json channel_details(broker::Channel& ch);

}  // namespace warren::management
