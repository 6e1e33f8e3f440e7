/*
 * rabbitmq-c (librabbitmq) scenarios for tests/integration/test_clients_rabbitmq_c.py.
 *
 * Usage: amqp_c_client <scenario> <host> <port>
 * Prints "OK <scenario>" and exits 0 on success; prints what failed and exits 1 otherwise.
 * Build: cc -std=c11 -Wall -o amqp_c_client amqp_c_client.c -lrabbitmq
 */
#define _DEFAULT_SOURCE
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *g_scenario = "?";
static char g_prefix[64];

static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "FAIL %s: ", g_scenario);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(1);
}

#define CHECK(cond, ...)                                                    \
  do {                                                                      \
    if (!(cond)) {                                                          \
      fprintf(stderr, "line %d: check failed: %s\n", __LINE__, #cond);      \
      fail(__VA_ARGS__);                                                    \
    }                                                                       \
  } while (0)

static void check_reply(amqp_rpc_reply_t r, const char *what) {
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return;
    case AMQP_RESPONSE_NONE:
      fail("%s: missing RPC reply type", what);
      break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      fail("%s: library error %s", what, amqp_error_string2(r.library_error));
      break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_t *m = r.reply.decoded;
        fail("%s: connection closed %u %.*s", what, m->reply_code, (int)m->reply_text.len,
             (char *)m->reply_text.bytes);
      } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        amqp_channel_close_t *m = r.reply.decoded;
        fail("%s: channel closed %u %.*s", what, m->reply_code, (int)m->reply_text.len,
             (char *)m->reply_text.bytes);
      } else {
        fail("%s: unexpected server method 0x%08X", what, r.reply.id);
      }
      break;
  }
}

static void check_status(int status, const char *what) {
  if (status != AMQP_STATUS_OK) fail("%s: %s", what, amqp_error_string2(status));
}

static amqp_connection_state_t open_conn(const char *host, int port, int frame_max,
                                         int heartbeat) {
  amqp_connection_state_t conn = amqp_new_connection();
  amqp_socket_t *sock = amqp_tcp_socket_new(conn);
  CHECK(sock != NULL, "creating TCP socket");
  struct timeval tv = {10, 0};
  check_status(amqp_socket_open_noblock(sock, host, port, &tv), "opening socket");
  struct timeval rpc = {10, 0};
  amqp_set_rpc_timeout(conn, &rpc);
  check_reply(amqp_login(conn, "/", 0, frame_max, heartbeat, AMQP_SASL_METHOD_PLAIN, "guest",
                         "guest"),
              "login");
  return conn;
}

static void open_channel(amqp_connection_state_t conn, amqp_channel_t ch) {
  amqp_channel_open(conn, ch);
  check_reply(amqp_get_rpc_reply(conn), "channel.open");
}

static void close_conn(amqp_connection_state_t conn) {
  check_reply(amqp_connection_close(conn, AMQP_REPLY_SUCCESS), "connection.close");
  check_status(amqp_destroy_connection(conn), "destroy connection");
}

static char *name(const char *what) {
  static char buf[8][128];
  static int i;
  char *b = buf[i++ % 8];
  snprintf(b, sizeof buf[0], "%s-%s", g_prefix, what);
  return b;
}

static void declare_queue(amqp_connection_state_t conn, amqp_channel_t ch, const char *q,
                          int exclusive) {
  amqp_queue_declare_ok_t *ok = amqp_queue_declare(conn, ch, amqp_cstring_bytes(q), 0, 0,
                                                   exclusive, 0, amqp_empty_table);
  check_reply(amqp_get_rpc_reply(conn), "queue.declare");
  CHECK(ok != NULL, "queue.declare-ok missing");
  CHECK(ok->queue.len == strlen(q) && memcmp(ok->queue.bytes, q, ok->queue.len) == 0,
        "declared queue name differs");
}

static uint32_t passive_count(amqp_connection_state_t conn, amqp_channel_t ch, const char *q) {
  amqp_queue_declare_ok_t *ok =
      amqp_queue_declare(conn, ch, amqp_cstring_bytes(q), 1, 0, 0, 0, amqp_empty_table);
  check_reply(amqp_get_rpc_reply(conn), "passive queue.declare");
  return ok->message_count;
}

static void delete_queue(amqp_connection_state_t conn, amqp_channel_t ch, const char *q) {
  amqp_queue_delete(conn, ch, amqp_cstring_bytes(q), 0, 0);
  check_reply(amqp_get_rpc_reply(conn), "queue.delete");
}

static void publish(amqp_connection_state_t conn, amqp_channel_t ch, const char *exchange,
                    const char *rk, amqp_bytes_t body, amqp_basic_properties_t *props,
                    int mandatory) {
  check_status(amqp_basic_publish(conn, ch, amqp_cstring_bytes(exchange),
                                  amqp_cstring_bytes(rk), mandatory, 0, props, body),
               "basic.publish");
}

static int bytes_eq(amqp_bytes_t b, const char *s) {
  return b.len == strlen(s) && memcmp(b.bytes, s, b.len) == 0;
}

/* basic.get; returns 1 and fills msg when a message came, 0 on get-empty. */
static int get_message(amqp_connection_state_t conn, amqp_channel_t ch, const char *q,
                       int no_ack, amqp_message_t *msg, amqp_basic_get_ok_t *get_ok) {
  amqp_rpc_reply_t r = amqp_basic_get(conn, ch, amqp_cstring_bytes(q), no_ack);
  check_reply(r, "basic.get");
  if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) return 0;
  CHECK(r.reply.id == AMQP_BASIC_GET_OK_METHOD, "unexpected reply 0x%08X", r.reply.id);
  if (get_ok) *get_ok = *(amqp_basic_get_ok_t *)r.reply.decoded;
  check_reply(amqp_read_message(conn, ch, msg, 0), "reading message");
  return 1;
}

/* basic.get, retrying for a few seconds while the queue is empty. */
static void get_one(amqp_connection_state_t conn, amqp_channel_t ch, const char *q, int no_ack,
                    amqp_message_t *msg, amqp_basic_get_ok_t *get_ok) {
  for (int i = 0; i < 500; i++) {
    if (get_message(conn, ch, q, no_ack, msg, get_ok)) return;
    usleep(10000);
  }
  fail("no message in %s", q);
}

static amqp_table_entry_t entry(const char *key, amqp_field_value_t v) {
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes(key);
  e.value = v;
  return e;
}

static const amqp_table_entry_t *find(const amqp_table_t *t, const char *key) {
  for (int i = 0; i < t->num_entries; i++)
    if (bytes_eq(t->entries[i].key, key)) return &t->entries[i];
  return NULL;
}

/* The entry `key` of t, which must be there with type tag `kind`. */
static const amqp_table_entry_t *hdr(const amqp_table_t *t, const char *key, char kind) {
  const amqp_table_entry_t *e = find(t, key);
  CHECK(e != NULL, "header %s missing", key);
  CHECK(e->value.kind == kind, "header %s came back with type %c", key, e->value.kind);
  return e;
}

/* ---------------------------------------------------------------- scenarios */

static void sc_roundtrip(const char *host, int port) {
  amqp_connection_state_t conn = open_conn(host, port, 131072, 0);
  open_channel(conn, 1);
  const char *q = name("q");
  declare_queue(conn, 1, q, 0);

  amqp_field_value_t arr_items[3];
  arr_items[0].kind = AMQP_FIELD_KIND_I32;
  arr_items[0].value.i32 = 7;
  arr_items[1].kind = AMQP_FIELD_KIND_UTF8;
  arr_items[1].value.bytes = amqp_cstring_bytes("in-array");
  arr_items[2].kind = AMQP_FIELD_KIND_BOOLEAN;
  arr_items[2].value.boolean = 1;
  amqp_table_entry_t nested[1];
  amqp_field_value_t v;
  v.kind = AMQP_FIELD_KIND_UTF8;
  v.value.bytes = amqp_cstring_bytes("deep");
  nested[0] = entry("inner", v);

  amqp_table_entry_t h[16];
  int n = 0;
  v.kind = AMQP_FIELD_KIND_UTF8; v.value.bytes = amqp_cstring_bytes("text"); h[n++] = entry("S", v);
  v.kind = AMQP_FIELD_KIND_I32; v.value.i32 = -123456; h[n++] = entry("I", v);
  v.kind = AMQP_FIELD_KIND_I64; v.value.i64 = -(INT64_C(1) << 40); h[n++] = entry("l", v);
  v.kind = AMQP_FIELD_KIND_BOOLEAN; v.value.boolean = 1; h[n++] = entry("t", v);
  v.kind = AMQP_FIELD_KIND_F64; v.value.f64 = 3.25; h[n++] = entry("d", v);
  v.kind = AMQP_FIELD_KIND_F32; v.value.f32 = 1.5f; h[n++] = entry("f", v);
  v.kind = AMQP_FIELD_KIND_I8; v.value.i8 = -5; h[n++] = entry("b", v);
  v.kind = AMQP_FIELD_KIND_U8; v.value.u8 = 250; h[n++] = entry("B", v);
  v.kind = AMQP_FIELD_KIND_I16; v.value.i16 = -300; h[n++] = entry("s", v);
  v.kind = AMQP_FIELD_KIND_U16; v.value.u16 = 60000; h[n++] = entry("u", v);
  v.kind = AMQP_FIELD_KIND_U32; v.value.u32 = 4000000000u; h[n++] = entry("i", v);
  v.kind = AMQP_FIELD_KIND_DECIMAL; v.value.decimal.decimals = 2; v.value.decimal.value = 31415;
  h[n++] = entry("D", v);
  v.kind = AMQP_FIELD_KIND_TIMESTAMP; v.value.u64 = 1700000000; h[n++] = entry("T", v);
  v.kind = AMQP_FIELD_KIND_BYTES; v.value.bytes.len = 3; v.value.bytes.bytes = "\x00\x01\x02";
  h[n++] = entry("x", v);
  v.kind = AMQP_FIELD_KIND_ARRAY; v.value.array.num_entries = 3; v.value.array.entries = arr_items;
  h[n++] = entry("A", v);
  v.kind = AMQP_FIELD_KIND_TABLE; v.value.table.num_entries = 1; v.value.table.entries = nested;
  h[n++] = entry("F", v);

  amqp_basic_properties_t p;
  memset(&p, 0, sizeof p);
  p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG |
             AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_PRIORITY_FLAG |
             AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_REPLY_TO_FLAG |
             AMQP_BASIC_EXPIRATION_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
             AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_USER_ID_FLAG |
             AMQP_BASIC_APP_ID_FLAG;
  p.content_type = amqp_cstring_bytes("application/x-c");
  p.content_encoding = amqp_cstring_bytes("identity");
  p.headers.num_entries = n;
  p.headers.entries = h;
  p.delivery_mode = 2;
  p.priority = 4;
  p.correlation_id = amqp_cstring_bytes("corr-c");
  p.reply_to = amqp_cstring_bytes("reply-c");
  p.expiration = amqp_cstring_bytes("600000");
  p.message_id = amqp_cstring_bytes("msg-c");
  p.timestamp = 1700000001;
  p.type = amqp_cstring_bytes("type-c");
  p.user_id = amqp_cstring_bytes("guest");
  p.app_id = amqp_cstring_bytes("app-c");
  publish(conn, 1, "", q, amqp_cstring_bytes("hello from C"), &p, 0);
  publish(conn, 1, "", q, amqp_cstring_bytes("second"), NULL, 0);

  amqp_message_t msg;
  amqp_basic_get_ok_t gok;
  get_one(conn, 1, q, 0, &msg, &gok);
  CHECK(bytes_eq(msg.body, "hello from C"), "body");
  CHECK(gok.message_count == 1, "get-ok message_count %u", gok.message_count);
  CHECK(gok.redelivered == 0, "redelivered");
  CHECK(bytes_eq(gok.exchange, ""), "exchange");
  CHECK(bytes_eq(gok.routing_key, q), "routing key");
  amqp_basic_properties_t *rp = &msg.properties;
  CHECK(rp->_flags == p._flags, "property flags 0x%04X vs 0x%04X", rp->_flags, p._flags);
  CHECK(bytes_eq(rp->content_type, "application/x-c"), "content_type");
  CHECK(bytes_eq(rp->content_encoding, "identity"), "content_encoding");
  CHECK(rp->delivery_mode == 2, "delivery_mode");
  CHECK(rp->priority == 4, "priority");
  CHECK(bytes_eq(rp->correlation_id, "corr-c"), "correlation_id");
  CHECK(bytes_eq(rp->reply_to, "reply-c"), "reply_to");
  CHECK(bytes_eq(rp->expiration, "600000"), "expiration");
  CHECK(bytes_eq(rp->message_id, "msg-c"), "message_id");
  CHECK(rp->timestamp == 1700000001, "timestamp");
  CHECK(bytes_eq(rp->type, "type-c"), "type");
  CHECK(bytes_eq(rp->user_id, "guest"), "user_id");
  CHECK(bytes_eq(rp->app_id, "app-c"), "app_id");

  /* every header comes back with its own type tag and value */
  CHECK(rp->headers.num_entries == n, "header count %d", rp->headers.num_entries);
  const amqp_table_entry_t *e;
#define HDR(key, kind_) hdr(&rp->headers, key, kind_)
  CHECK(bytes_eq(HDR("S", AMQP_FIELD_KIND_UTF8)->value.value.bytes, "text"), "S");
  CHECK(HDR("I", AMQP_FIELD_KIND_I32)->value.value.i32 == -123456, "I");
  CHECK(HDR("l", AMQP_FIELD_KIND_I64)->value.value.i64 == -(INT64_C(1) << 40), "l");
  CHECK(HDR("t", AMQP_FIELD_KIND_BOOLEAN)->value.value.boolean == 1, "t");
  CHECK(HDR("d", AMQP_FIELD_KIND_F64)->value.value.f64 == 3.25, "d");
  CHECK(HDR("f", AMQP_FIELD_KIND_F32)->value.value.f32 == 1.5f, "f");
  CHECK(HDR("b", AMQP_FIELD_KIND_I8)->value.value.i8 == -5, "b");
  CHECK(HDR("B", AMQP_FIELD_KIND_U8)->value.value.u8 == 250, "B");
  CHECK(HDR("s", AMQP_FIELD_KIND_I16)->value.value.i16 == -300, "s");
  CHECK(HDR("u", AMQP_FIELD_KIND_U16)->value.value.u16 == 60000, "u");
  CHECK(HDR("i", AMQP_FIELD_KIND_U32)->value.value.u32 == 4000000000u, "i");
  e = HDR("D", AMQP_FIELD_KIND_DECIMAL);
  CHECK(e->value.value.decimal.decimals == 2 && e->value.value.decimal.value == 31415, "D");
  CHECK(HDR("T", AMQP_FIELD_KIND_TIMESTAMP)->value.value.u64 == 1700000000, "T");
  e = HDR("x", AMQP_FIELD_KIND_BYTES);
  CHECK(e->value.value.bytes.len == 3 && memcmp(e->value.value.bytes.bytes, "\x00\x01\x02", 3) == 0,
        "x");
  e = HDR("A", AMQP_FIELD_KIND_ARRAY);
  CHECK(e->value.value.array.num_entries == 3, "A length");
  CHECK(e->value.value.array.entries[0].kind == AMQP_FIELD_KIND_I32 &&
            e->value.value.array.entries[0].value.i32 == 7, "A[0]");
  CHECK(e->value.value.array.entries[1].kind == AMQP_FIELD_KIND_UTF8 &&
            bytes_eq(e->value.value.array.entries[1].value.bytes, "in-array"), "A[1]");
  CHECK(e->value.value.array.entries[2].kind == AMQP_FIELD_KIND_BOOLEAN &&
            e->value.value.array.entries[2].value.boolean == 1, "A[2]");
  e = HDR("F", AMQP_FIELD_KIND_TABLE);
  CHECK(e->value.value.table.num_entries == 1 &&
            bytes_eq(e->value.value.table.entries[0].key, "inner") &&
            bytes_eq(e->value.value.table.entries[0].value.value.bytes, "deep"), "F");
#undef HDR
  amqp_basic_ack(conn, 1, gok.delivery_tag, 0);
  amqp_destroy_message(&msg);

  /* the second message has no properties at all */
  get_one(conn, 1, q, 1, &msg, &gok);
  CHECK(bytes_eq(msg.body, "second"), "second body");
  CHECK(msg.properties._flags == 0, "second message flags 0x%04X", msg.properties._flags);
  CHECK(gok.message_count == 0, "second message_count");
  amqp_destroy_message(&msg);
  CHECK(!get_message(conn, 1, q, 1, &msg, NULL), "queue should be empty");
  delete_queue(conn, 1, q);
  close_conn(conn);
}

static void sc_consume_ack(const char *host, int port) {
  amqp_connection_state_t conn = open_conn(host, port, 131072, 0);
  open_channel(conn, 1);
  const char *q = name("q");
  declare_queue(conn, 1, q, 0);
  enum { N = 50 };
  for (int i = 0; i < N; i++) {
    char body[32];
    snprintf(body, sizeof body, "msg-%d", i);
    publish(conn, 1, "", q, amqp_cstring_bytes(body), NULL, 0);
  }
  amqp_basic_qos(conn, 1, 0, 10, 0);
  check_reply(amqp_get_rpc_reply(conn), "basic.qos");
  amqp_basic_consume_ok_t *cok = amqp_basic_consume(conn, 1, amqp_cstring_bytes(q),
                                                    amqp_cstring_bytes("c-tag"), 0, 0, 0,
                                                    amqp_empty_table);
  check_reply(amqp_get_rpc_reply(conn), "basic.consume");
  CHECK(bytes_eq(cok->consumer_tag, "c-tag"), "consumer tag");
  for (int i = 0; i < N; i++) {
    amqp_envelope_t env;
    struct timeval tv = {10, 0};
    amqp_maybe_release_buffers(conn);
    check_reply(amqp_consume_message(conn, &env, &tv, 0), "consume_message");
    char want[32];
    snprintf(want, sizeof want, "msg-%d", i);
    CHECK(bytes_eq(env.message.body, want), "delivery %d body %.*s", i,
          (int)env.message.body.len, (char *)env.message.body.bytes);
    CHECK(bytes_eq(env.consumer_tag, "c-tag"), "delivery consumer tag");
    CHECK(env.delivery_tag == (uint64_t)i + 1, "delivery tag %llu",
          (unsigned long long)env.delivery_tag);
    CHECK(env.redelivered == 0, "redelivered");
    check_status(amqp_basic_ack(conn, 1, env.delivery_tag, 0), "basic.ack");
    amqp_destroy_envelope(&env);
  }
  amqp_basic_cancel_ok_t *cancel = amqp_basic_cancel(conn, 1, amqp_cstring_bytes("c-tag"));
  check_reply(amqp_get_rpc_reply(conn), "basic.cancel");
  CHECK(bytes_eq(cancel->consumer_tag, "c-tag"), "cancel-ok tag");
  CHECK(passive_count(conn, 1, q) == 0, "all acked");
  delete_queue(conn, 1, q);
  close_conn(conn);
}

/* Waits for basic.ack frames until every tag up to last is confirmed; returns basic.return count. */
static int wait_confirms(amqp_connection_state_t conn, amqp_channel_t ch, uint64_t last,
                         int *nacks) {
  uint64_t confirmed = 0;
  int returns = 0;
  char *seen = calloc(last + 1, 1);
  while (confirmed < last) {
    amqp_frame_t f;
    struct timeval tv = {10, 0};
    int st = amqp_simple_wait_frame_noblock(conn, &f, &tv);
    check_status(st, "waiting for confirms");
    CHECK(f.channel == ch, "frame on channel %u", f.channel);
    if (f.frame_type != AMQP_FRAME_METHOD) fail("unexpected frame type %d", f.frame_type);
    if (f.payload.method.id == AMQP_BASIC_RETURN_METHOD) {
      amqp_message_t m;
      check_reply(amqp_read_message(conn, ch, &m, 0), "reading returned message");
      amqp_destroy_message(&m);
      returns++;
      continue;
    }
    uint64_t tag;
    int multiple;
    if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
      amqp_basic_ack_t *a = f.payload.method.decoded;
      tag = a->delivery_tag;
      multiple = a->multiple;
    } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
      amqp_basic_nack_t *a = f.payload.method.decoded;
      tag = a->delivery_tag;
      multiple = a->multiple;
      if (nacks) (*nacks)++;
    } else {
      fail("unexpected method 0x%08X while waiting for confirms", f.payload.method.id);
      return 0;
    }
    CHECK(tag >= 1 && tag <= last, "confirm tag %llu out of range", (unsigned long long)tag);
    for (uint64_t t = multiple ? 1 : tag; t <= tag; t++) {
      if (!seen[t]) {
        seen[t] = 1;
        confirmed++;
      } else {
        CHECK(multiple, "tag %llu confirmed twice", (unsigned long long)t);
      }
    }
  }
  free(seen);
  return returns;
}

static void sc_confirm(const char *host, int port) {
  amqp_connection_state_t conn = open_conn(host, port, 131072, 0);
  open_channel(conn, 1);
  const char *q = name("q");
  declare_queue(conn, 1, q, 0);
  amqp_confirm_select(conn, 1);
  check_reply(amqp_get_rpc_reply(conn), "confirm.select");
  enum { N = 100 };
  for (int i = 0; i < N; i++) publish(conn, 1, "", q, amqp_cstring_bytes("c"), NULL, 0);
  int nacks = 0;
  CHECK(wait_confirms(conn, 1, N, &nacks) == 0, "no returns expected");
  CHECK(nacks == 0, "nacks");
  CHECK(passive_count(conn, 1, q) == N, "all %d messages queued", N);
  delete_queue(conn, 1, q);
  close_conn(conn);
}

static void sc_confirm_return(const char *host, int port) {
  amqp_connection_state_t conn = open_conn(host, port, 131072, 0);
  open_channel(conn, 1);
  amqp_confirm_select(conn, 1);
  check_reply(amqp_get_rpc_reply(conn), "confirm.select");
  /* unroutable: the mandatory one comes back (basic.return before its basic.ack), the
     other is dropped; both are confirmed */
  publish(conn, 1, "", name("nowhere"), amqp_cstring_bytes("lost"), NULL, 1);
  publish(conn, 1, "amq.direct", name("nowhere"), amqp_cstring_bytes("lost2"), NULL, 0);
  int returns = wait_confirms(conn, 1, 2, NULL);
  CHECK(returns == 1, "one basic.return before the acks, got %d", returns);
  close_conn(conn);
}

static void sc_channel_404(const char *host, int port) {
  amqp_connection_state_t conn = open_conn(host, port, 131072, 0);
  open_channel(conn, 1);
  const char *missing = name("missing");
  amqp_queue_declare_ok_t *ok = amqp_queue_declare(conn, 1, amqp_cstring_bytes(missing), 1, 0,
                                                   0, 0, amqp_empty_table);
  CHECK(ok == NULL, "passive declare of a missing queue succeeded");
  amqp_rpc_reply_t r = amqp_get_rpc_reply(conn);
  CHECK(r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION, "reply type %d", r.reply_type);
  CHECK(r.reply.id == AMQP_CHANNEL_CLOSE_METHOD, "method 0x%08X", r.reply.id);
  amqp_channel_close_t *cl = r.reply.decoded;
  CHECK(cl->reply_code == 404, "reply code %u", cl->reply_code);
  char want[256];
  snprintf(want, sizeof want, "NOT_FOUND - no queue '%s' in vhost '/'", missing);
  CHECK(bytes_eq(cl->reply_text, want), "reply text %.*s", (int)cl->reply_text.len,
        (char *)cl->reply_text.bytes);
  CHECK(cl->class_id == 50 && cl->method_id == 10, "class/method %u/%u", cl->class_id,
        cl->method_id);
  amqp_channel_close_ok_t close_ok;
  check_status(amqp_send_method(conn, 1, AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok),
               "channel.close-ok");
  /* a fresh channel works, and so does reopening the same channel number */
  open_channel(conn, 2);
  const char *q = name("q");
  declare_queue(conn, 2, q, 1);
  open_channel(conn, 1);
  publish(conn, 1, "", q, amqp_cstring_bytes("after-404"), NULL, 0);
  amqp_message_t msg;
  get_one(conn, 2, q, 1, &msg, NULL);
  CHECK(bytes_eq(msg.body, "after-404"), "body");
  amqp_destroy_message(&msg);
  close_conn(conn);
}

static void sc_large(const char *host, int port) {
  /* a small frame_max makes a 1 MiB body travel in 257 body frames */
  amqp_connection_state_t conn = open_conn(host, port, 4096, 0);
  CHECK(amqp_get_frame_max(conn) == 4096, "frame_max %d", amqp_get_frame_max(conn));
  open_channel(conn, 1);
  const char *q = name("q");
  declare_queue(conn, 1, q, 0);
  size_t len = 1024 * 1024 + 3;
  amqp_bytes_t body = amqp_bytes_malloc(len);
  unsigned int seed = 12345;
  for (size_t i = 0; i < len; i++) {
    seed = seed * 1103515245u + 12345u;
    ((unsigned char *)body.bytes)[i] = (unsigned char)(seed >> 16);
  }
  publish(conn, 1, "", q, body, NULL, 0);
  amqp_message_t msg;
  get_one(conn, 1, q, 1, &msg, NULL);
  CHECK(msg.body.len == len, "body length %zu", msg.body.len);
  CHECK(memcmp(msg.body.bytes, body.bytes, len) == 0, "body bytes differ");
  amqp_destroy_message(&msg);
  /* and through a consumer on a connection with the default frame_max */
  amqp_connection_state_t c2 = open_conn(host, port, 131072, 0);
  open_channel(c2, 1);
  publish(c2, 1, "", q, body, NULL, 0);
  amqp_basic_consume(c2, 1, amqp_cstring_bytes(q), amqp_empty_bytes, 0, 1, 0, amqp_empty_table);
  check_reply(amqp_get_rpc_reply(c2), "basic.consume");
  amqp_envelope_t env;
  struct timeval tv = {10, 0};
  check_reply(amqp_consume_message(c2, &env, &tv, 0), "consume large");
  CHECK(env.message.body.len == len && memcmp(env.message.body.bytes, body.bytes, len) == 0,
        "consumed body differs");
  amqp_destroy_envelope(&env);
  amqp_bytes_free(body);
  close_conn(c2);
  delete_queue(conn, 1, q);
  close_conn(conn);
}

static void sc_tx(const char *host, int port) {
  amqp_connection_state_t conn = open_conn(host, port, 131072, 0);
  open_channel(conn, 1);
  const char *q = name("q");
  declare_queue(conn, 1, q, 0);
  amqp_tx_select(conn, 1);
  check_reply(amqp_get_rpc_reply(conn), "tx.select");
  publish(conn, 1, "", q, amqp_cstring_bytes("rolled-back"), NULL, 0);
  amqp_tx_rollback(conn, 1);
  check_reply(amqp_get_rpc_reply(conn), "tx.rollback");
  CHECK(passive_count(conn, 1, q) == 0, "rolled back publish is not queued");
  publish(conn, 1, "", q, amqp_cstring_bytes("committed-1"), NULL, 0);
  publish(conn, 1, "", q, amqp_cstring_bytes("committed-2"), NULL, 0);
  CHECK(passive_count(conn, 1, q) == 0, "nothing queued before commit");
  amqp_tx_commit(conn, 1);
  check_reply(amqp_get_rpc_reply(conn), "tx.commit");
  CHECK(passive_count(conn, 1, q) == 2, "both queued after commit");
  /* acks are transactional too */
  amqp_message_t msg;
  amqp_basic_get_ok_t gok;
  get_one(conn, 1, q, 0, &msg, &gok);
  CHECK(bytes_eq(msg.body, "committed-1"), "first body");
  amqp_destroy_message(&msg);
  check_status(amqp_basic_ack(conn, 1, gok.delivery_tag, 0), "ack");
  amqp_tx_commit(conn, 1);
  check_reply(amqp_get_rpc_reply(conn), "tx.commit of the ack");
  get_one(conn, 1, q, 0, &msg, &gok);
  CHECK(bytes_eq(msg.body, "committed-2"), "second body");
  amqp_destroy_message(&msg);
  check_status(amqp_basic_ack(conn, 1, gok.delivery_tag, 0), "ack");
  amqp_tx_rollback(conn, 1);
  check_reply(amqp_get_rpc_reply(conn), "tx.rollback of the ack");
  /* the rolled-back ack left the message unacked: closing the channel requeues it */
  amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
  open_channel(conn, 1);
  get_one(conn, 1, q, 1, &msg, &gok);
  CHECK(bytes_eq(msg.body, "committed-2") && gok.redelivered, "requeued after rollback");
  amqp_destroy_message(&msg);
  CHECK(passive_count(conn, 1, q) == 0, "empty at the end");
  delete_queue(conn, 1, q);
  close_conn(conn);
}

static void sc_heartbeat(const char *host, int port) {
  /* heartbeat 1 s: rabbitmq-c drops the connection if nothing arrives for 2 intervals,
     so staying idle for 3.5 s checks that the server sends heartbeats */
  amqp_connection_state_t conn = open_conn(host, port, 131072, 1);
  CHECK(amqp_get_heartbeat(conn) == 1, "heartbeat %d", amqp_get_heartbeat(conn));
  open_channel(conn, 1);
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    double el = (now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9;
    if (el > 3.5) break;
    amqp_frame_t f;
    struct timeval tv = {0, 250000};
    int st = amqp_simple_wait_frame_noblock(conn, &f, &tv);
    if (st == AMQP_STATUS_TIMEOUT) continue;
    check_status(st, "idle wait");
    fail("unexpected frame type %d while idle", f.frame_type);
  }
  const char *q = name("q");
  declare_queue(conn, 1, q, 1);
  close_conn(conn);
}

static void sc_exchange_bind(const char *host, int port) {
  amqp_connection_state_t conn = open_conn(host, port, 131072, 0);
  open_channel(conn, 1);
  const char *x = name("x");
  const char *q = name("q");
  amqp_exchange_declare(conn, 1, amqp_cstring_bytes(x), amqp_cstring_bytes("topic"), 0, 0, 1, 0,
                        amqp_empty_table);
  check_reply(amqp_get_rpc_reply(conn), "exchange.declare");
  declare_queue(conn, 1, q, 1);
  amqp_queue_bind(conn, 1, amqp_cstring_bytes(q), amqp_cstring_bytes(x),
                  amqp_cstring_bytes("a.*"), amqp_empty_table);
  check_reply(amqp_get_rpc_reply(conn), "queue.bind");
  amqp_exchange_bind(conn, 1, amqp_cstring_bytes(x), amqp_cstring_bytes("amq.fanout"),
                     amqp_cstring_bytes(""), amqp_empty_table);
  check_reply(amqp_get_rpc_reply(conn), "exchange.bind");
  publish(conn, 1, x, "a.b", amqp_cstring_bytes("direct-hit"), NULL, 0);
  publish(conn, 1, x, "b.a", amqp_cstring_bytes("miss"), NULL, 0);
  publish(conn, 1, "amq.fanout", "a.z", amqp_cstring_bytes("via-fanout"), NULL, 0);
  amqp_message_t msg;
  get_one(conn, 1, q, 1, &msg, NULL);
  CHECK(bytes_eq(msg.body, "direct-hit"), "first");
  amqp_destroy_message(&msg);
  get_one(conn, 1, q, 1, &msg, NULL);
  CHECK(bytes_eq(msg.body, "via-fanout"), "second");
  amqp_destroy_message(&msg);
  usleep(50000);
  CHECK(!get_message(conn, 1, q, 1, &msg, NULL), "no third message");
  amqp_exchange_unbind(conn, 1, amqp_cstring_bytes(x), amqp_cstring_bytes("amq.fanout"),
                       amqp_cstring_bytes(""), amqp_empty_table);
  check_reply(amqp_get_rpc_reply(conn), "exchange.unbind");
  amqp_exchange_delete(conn, 1, amqp_cstring_bytes(x), 0);
  check_reply(amqp_get_rpc_reply(conn), "exchange.delete");
  close_conn(conn);
}

struct scenario {
  const char *name;
  void (*fn)(const char *, int);
};

static const struct scenario scenarios[] = {
    {"roundtrip", sc_roundtrip},         {"consume_ack", sc_consume_ack},
    {"confirm", sc_confirm},             {"confirm_return", sc_confirm_return},
    {"channel_404", sc_channel_404},     {"large", sc_large},
    {"tx", sc_tx},                       {"heartbeat", sc_heartbeat},
    {"exchange_bind", sc_exchange_bind},
};

int main(int argc, char **argv) {
  size_t n = sizeof scenarios / sizeof scenarios[0];
  if (argc == 2 && strcmp(argv[1], "list") == 0) {
    for (size_t i = 0; i < n; i++) printf("%s\n", scenarios[i].name);
    return 0;
  }
  if (argc != 4) {
    fprintf(stderr, "usage: %s <scenario|list> <host> <port>\n", argv[0]);
    return 64;
  }
  g_scenario = argv[1];
  snprintf(g_prefix, sizeof g_prefix, "w-c-%s-%d", argv[1], (int)getpid());
  alarm(30); /* never hang */
  for (size_t i = 0; i < n; i++) {
    if (strcmp(scenarios[i].name, argv[1]) == 0) {
      scenarios[i].fn(argv[2], atoi(argv[3]));
      printf("OK %s\n", argv[1]);
      return 0;
    }
  }
  fprintf(stderr, "unknown scenario %s\n", argv[1]);
  return 64;
}
