// RabbitMQ Java client (Debian's librabbitmq-client-java, amqp-client 5.x) scenarios for
// tests/integration/test_clients_java.py.
//
// Usage: java -cp amqp-client.jar:slf4j-api.jar:slf4j-nop.jar:. JavaClient <host> <port> [scenario...]
// Runs the named scenarios (all when none is named), each on its own connection, and prints
// one line per scenario: "RESULT <scenario> OK" or "RESULT <scenario> FAIL <reason>".
// Exits 0 when all passed, 1 otherwise; a watchdog ends the JVM with 2 after 50 s.

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.AlreadyClosedException;
import com.rabbitmq.client.CancelCallback;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.ConfirmListener;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ConnectionFactory;
import com.rabbitmq.client.DefaultConsumer;
import com.rabbitmq.client.Envelope;
import com.rabbitmq.client.GetResponse;
import com.rabbitmq.client.LongString;
import com.rabbitmq.client.ShutdownSignalException;

import java.io.IOException;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Date;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

public class JavaClient {
    interface Scenario {
        void run() throws Exception;
    }

    static String host;
    static int port;
    static final String BASE = "w-java-" + ProcessHandle.current().pid() + "-";
    static String PREFIX = BASE; // BASE + the running scenario's name + "-"
    static final List<Connection> opened = new ArrayList<>();

    static void check(boolean cond, String what) {
        if (!cond) throw new AssertionError(what);
    }

    static void eq(Object expected, Object actual, String what) {
        if (expected == null ? actual != null : !expected.equals(actual)) {
            throw new AssertionError(what + ": expected <" + expected + "> but got <" + actual + ">");
        }
    }

    static Connection connect() throws Exception {
        ConnectionFactory f = new ConnectionFactory();
        f.setHost(host);
        f.setPort(port);
        f.setUsername("guest");
        f.setPassword("guest");
        f.setVirtualHost("/");
        f.setConnectionTimeout(10000);
        f.setHandshakeTimeout(10000);
        f.setShutdownTimeout(5000);
        f.setAutomaticRecoveryEnabled(false);
        Connection c = f.newConnection("warren-java-test");
        opened.add(c);
        return c;
    }

    static String str(Object o) {
        if (o instanceof LongString || o instanceof byte[]) {
            byte[] b = o instanceof LongString ? ((LongString) o).getBytes() : (byte[]) o;
            return new String(b, StandardCharsets.UTF_8);
        }
        return o == null ? null : o.toString();
    }

    static GetResponse getOne(Channel ch, String q, boolean autoAck) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (System.nanoTime() < deadline) {
            GetResponse r = ch.basicGet(q, autoAck);
            if (r != null) return r;
            Thread.sleep(20);
        }
        throw new AssertionError("no message in " + q);
    }

    static ShutdownSignalException channelError(Scenario op) throws Exception {
        try {
            op.run();
        } catch (IOException e) {
            check(e.getCause() instanceof ShutdownSignalException, "cause is " + e.getCause());
            return (ShutdownSignalException) e.getCause();
        }
        throw new AssertionError("expected a channel error");
    }

    // ---------------------------------------------------------------- scenarios

    static void connect_close() throws Exception {
        Connection c = connect();
        check(c.isOpen(), "open");
        Map<String, Object> props = c.getServerProperties();
        @SuppressWarnings("unchecked")
        Map<String, Object> caps = (Map<String, Object>) props.get("capabilities");
        for (String cap : new String[] {"publisher_confirms", "exchange_exchange_bindings",
                "basic.nack", "consumer_cancel_notify", "connection.blocked",
                "authentication_failure_close", "per_consumer_qos"}) {
            eq(Boolean.TRUE, caps.get(cap), "capability " + cap);
        }
        check(c.getFrameMax() >= 4096, "frame max " + c.getFrameMax());
        check(c.getChannelMax() > 0, "channel max " + c.getChannelMax());
        Channel a = c.createChannel();
        Channel b = c.createChannel(7);
        eq(7, b.getChannelNumber(), "explicit channel number");
        check(a.getChannelNumber() != 7, "distinct channel numbers");
        b.close();
        check(!b.isOpen() && a.isOpen(), "only b closed");
        c.close();
        check(!c.isOpen(), "connection closed");
        check(!a.isOpen(), "channel closed with its connection");
        ShutdownSignalException why = c.getCloseReason();
        check(why.isHardError() && why.isInitiatedByApplication(), "closed by us");
        try {
            c.createChannel();
            throw new AssertionError("createChannel on a closed connection");
        } catch (AlreadyClosedException expected) {
            // fine
        }
    }

    static void declare() throws Exception {
        Connection c = connect();
        Channel ch = c.createChannel();
        String q = PREFIX + "q";
        AMQP.Queue.DeclareOk ok = ch.queueDeclare(q, false, false, false, null);
        eq(q, ok.getQueue(), "queue name");
        eq(0, ok.getMessageCount(), "message count");
        eq(0, ok.getConsumerCount(), "consumer count");
        String gen = ch.queueDeclare().getQueue();
        check(gen.startsWith("amq.gen-"), "server-named queue " + gen);
        for (String type : new String[] {"direct", "fanout", "topic", "headers"}) {
            ch.exchangeDeclare(PREFIX + type, type, false, false, null);
            ch.exchangeDeclarePassive(PREFIX + type);
        }
        ch.queueBind(q, PREFIX + "direct", "k");
        ch.queueBind(q, PREFIX + "topic", "a.#");
        Map<String, Object> hargs = new HashMap<>();
        hargs.put("x-match", "any");
        hargs.put("color", "red");
        ch.queueBind(q, PREFIX + "headers", "", hargs);
        ch.queueBind(q, PREFIX + "fanout", "");
        AMQP.BasicProperties red = new AMQP.BasicProperties.Builder()
                .headers(Collections.singletonMap("color", "red")).build();
        ch.basicPublish(PREFIX + "direct", "k", null, "d".getBytes());
        ch.basicPublish(PREFIX + "topic", "a.b.c", null, "t".getBytes());
        ch.basicPublish(PREFIX + "headers", "", red, "h".getBytes());
        ch.basicPublish(PREFIX + "fanout", "x", null, "f".getBytes());
        ch.basicPublish(PREFIX + "direct", "other", null, "no".getBytes());
        List<String> got = new ArrayList<>();
        for (int i = 0; i < 4; i++) got.add(new String(getOne(ch, q, true).getBody()));
        eq(Arrays.asList("d", "t", "h", "f"), got, "routed bodies");
        Thread.sleep(50);
        eq(0, ch.queueDeclarePassive(q).getMessageCount(), "nothing else routed");
        ch.queueUnbind(q, PREFIX + "direct", "k");
        ch.basicPublish(PREFIX + "direct", "k", null, "d2".getBytes());
        ch.basicPublish("", q, null, "last".getBytes());
        eq("last", new String(getOne(ch, q, false).getBody()), "unbound direct dropped");
        // deleting returns the number of messages that went with the queue (the unacked one)
        ch.close();
        Channel ch2 = c.createChannel();
        eq(1, ch2.queueDelete(q).getMessageCount(), "queue.delete-ok message count");
        for (String type : new String[] {"direct", "fanout", "topic", "headers"}) {
            ch2.exchangeDelete(PREFIX + type);
        }
        c.close();
    }

    static void publish_get() throws Exception {
        Connection c = connect();
        Channel ch = c.createChannel();
        String q = ch.queueDeclare(PREFIX + "q", false, true, true, null).getQueue();
        Map<String, Object> nested = new HashMap<>();
        nested.put("inner", "deep");
        Map<String, Object> h = new LinkedHashMap<>();
        h.put("str", "text");
        h.put("int", 42);
        h.put("negint", -42);
        h.put("long", 1L << 40);
        h.put("bool", true);
        h.put("double", 2.5d);
        h.put("float", 1.25f);
        h.put("decimal", new BigDecimal("3.14"));
        h.put("date", new Date(1700000000000L));
        h.put("bytes", new byte[] {0, 1, 2});
        h.put("list", Arrays.asList(1, "two", false));
        h.put("table", nested);
        h.put("short", (short) -300);
        h.put("byte", (byte) -5);
        Date ts = new Date(1700000123000L);
        AMQP.BasicProperties props = new AMQP.BasicProperties.Builder()
                .contentType("application/json").contentEncoding("utf-8").headers(h)
                .deliveryMode(2).priority(5).correlationId("corr-j").replyTo("reply-j")
                .expiration("60000").messageId("mid-j").timestamp(ts).type("type-j")
                .userId("guest").appId("app-j").build();
        ch.basicPublish("", q, props, "{\"a\":1}".getBytes(StandardCharsets.UTF_8));
        ch.basicPublish("", q, null, new byte[0]);
        GetResponse r = getOne(ch, q, false);
        eq("{\"a\":1}", new String(r.getBody(), StandardCharsets.UTF_8), "body");
        eq(1, r.getMessageCount(), "messages left");
        Envelope env = r.getEnvelope();
        eq("", env.getExchange(), "exchange");
        eq(q, env.getRoutingKey(), "routing key");
        check(!env.isRedeliver(), "not redelivered");
        AMQP.BasicProperties p = r.getProps();
        eq("application/json", p.getContentType(), "content type");
        eq("utf-8", p.getContentEncoding(), "content encoding");
        eq(2, p.getDeliveryMode(), "delivery mode");
        eq(5, p.getPriority(), "priority");
        eq("corr-j", p.getCorrelationId(), "correlation id");
        eq("reply-j", p.getReplyTo(), "reply to");
        eq("60000", p.getExpiration(), "expiration");
        eq("mid-j", p.getMessageId(), "message id");
        eq(ts, p.getTimestamp(), "timestamp");
        eq("type-j", p.getType(), "type");
        eq("guest", p.getUserId(), "user id");
        eq("app-j", p.getAppId(), "app id");
        Map<String, Object> g = p.getHeaders();
        eq(h.size(), g.size(), "header count " + g.keySet());
        eq("text", str(g.get("str")), "str header");
        eq(42, g.get("int"), "int header");
        eq(-42, g.get("negint"), "negative int header");
        eq(1L << 40, g.get("long"), "long header");
        eq(true, g.get("bool"), "bool header");
        eq(2.5d, g.get("double"), "double header");
        eq(1.25f, g.get("float"), "float header");
        eq(new BigDecimal("3.14"), g.get("decimal"), "decimal header");
        eq(new Date(1700000000000L), g.get("date"), "timestamp header");
        check(Arrays.equals(new byte[] {0, 1, 2}, (byte[]) g.get("bytes")), "byte array header");
        @SuppressWarnings("unchecked")
        List<Object> list = (List<Object>) g.get("list");
        eq(3, list.size(), "list size");
        eq(1, list.get(0), "list[0]");
        eq("two", str(list.get(1)), "list[1]");
        eq(false, list.get(2), "list[2]");
        @SuppressWarnings("unchecked")
        Map<String, Object> t = (Map<String, Object>) g.get("table");
        eq("deep", str(t.get("inner")), "nested table");
        eq((short) -300, g.get("short"), "short header");
        eq((byte) -5, g.get("byte"), "byte header");
        ch.basicAck(env.getDeliveryTag(), false);
        GetResponse empty = getOne(ch, q, true);
        eq(0, empty.getBody().length, "empty body");
        eq(0, empty.getMessageCount(), "no messages left");
        check(ch.basicGet(q, true) == null, "get-empty gives null");
        c.close();
    }

    static void consume_ack() throws Exception {
        Connection c = connect();
        Channel ch = c.createChannel();
        // exclusive but not auto-delete: it must outlive the cancelled consumer below
        String q = ch.queueDeclare(PREFIX + "q", false, true, false, null).getQueue();
        final int n = 100;
        for (int i = 0; i < n; i++) ch.basicPublish("", q, null, ("m" + i).getBytes());
        ch.basicQos(10);
        BlockingQueue<String> got = new LinkedBlockingQueue<>();
        CountDownLatch consumeOk = new CountDownLatch(1);
        CountDownLatch cancelOk = new CountDownLatch(1);
        String tag = ch.basicConsume(q, false, "java-ctag", new DefaultConsumer(ch) {
            @Override
            public void handleConsumeOk(String consumerTag) {
                consumeOk.countDown();
            }

            @Override
            public void handleCancelOk(String consumerTag) {
                cancelOk.countDown();
            }

            @Override
            public void handleDelivery(String consumerTag, Envelope envelope,
                    AMQP.BasicProperties properties, byte[] body) throws IOException {
                got.add(consumerTag + ":" + envelope.getDeliveryTag() + ":" + new String(body));
                getChannel().basicAck(envelope.getDeliveryTag(), false);
            }
        });
        eq("java-ctag", tag, "consumer tag");
        check(consumeOk.await(10, TimeUnit.SECONDS), "handleConsumeOk");
        for (int i = 0; i < n; i++) {
            String s = got.poll(10, TimeUnit.SECONDS);
            check(s != null, "delivery " + i);
            eq("java-ctag:" + (i + 1) + ":m" + i, s, "delivery " + i);
        }
        ch.basicCancel(tag);
        check(cancelOk.await(10, TimeUnit.SECONDS), "handleCancelOk");
        AMQP.Queue.DeclareOk info = ch.queueDeclarePassive(q);
        eq(0, info.getMessageCount(), "all acked");
        eq(0, info.getConsumerCount(), "no consumers");
        c.close();
    }

    static void confirms() throws Exception {
        Connection c = connect();
        Channel ch = c.createChannel();
        String q = ch.queueDeclare(PREFIX + "q", false, true, true, null).getQueue();
        ch.confirmSelect();
        AtomicInteger acked = new AtomicInteger();
        AtomicInteger nacked = new AtomicInteger();
        ch.addConfirmListener(new ConfirmListener() {
            @Override
            public void handleAck(long deliveryTag, boolean multiple) {
                acked.incrementAndGet();
            }

            @Override
            public void handleNack(long deliveryTag, boolean multiple) {
                nacked.incrementAndGet();
            }
        });
        eq(1L, ch.getNextPublishSeqNo(), "first sequence number");
        final int n = 500;
        for (int i = 0; i < n; i++) ch.basicPublish("", q, null, ("c" + i).getBytes());
        eq((long) n + 1, ch.getNextPublishSeqNo(), "sequence number after publishing");
        ch.waitForConfirmsOrDie(10000);
        check(acked.get() > 0, "ConfirmListener saw acks");
        eq(0, nacked.get(), "nacks");
        eq(n, ch.queueDeclarePassive(q).getMessageCount(), "all queued");
        check(ch.waitForConfirms(1000), "nothing outstanding");
        c.close();
    }

    static void channel_404() throws Exception {
        Connection c = connect();
        Channel ch = c.createChannel();
        String missing = PREFIX + "missing";
        ShutdownSignalException sse = channelError(() -> ch.queueDeclarePassive(missing));
        check(!sse.isHardError(), "a channel error, not a connection error");
        check(!sse.isInitiatedByApplication(), "initiated by the server");
        AMQP.Channel.Close close = (AMQP.Channel.Close) sse.getReason();
        eq(404, close.getReplyCode(), "reply code");
        eq("NOT_FOUND - no queue '" + missing + "' in vhost '/'", close.getReplyText(), "reply text");
        eq(50, close.getClassId(), "class id");
        eq(10, close.getMethodId(), "method id");
        check(!ch.isOpen(), "channel closed");
        check(c.isOpen(), "connection still open");
        Channel ch2 = c.createChannel();
        String q = ch2.queueDeclare(PREFIX + "q", false, true, true, null).getQueue();
        ch2.basicPublish("", q, null, "after".getBytes());
        eq("after", new String(getOne(ch2, q, true).getBody()), "new channel works");
        // exclusive queues are always transient, so asking for durable=true on an exclusive
        // redeclare is no inequivalence (RabbitMQ 3.10 accepts it) ...
        ch2.queueDeclare(q, true, true, true, null);
        // ... but a different durable flag on a shared queue is a 406 on that channel only
        String shared = PREFIX + "shared";
        ch2.queueDeclare(shared, false, false, false, null);
        Channel ch3 = c.createChannel();
        sse = channelError(() -> ch3.queueDeclare(shared, true, false, false, null));
        eq(406, ((AMQP.Channel.Close) sse.getReason()).getReplyCode(), "redeclare reply code");
        eq("PRECONDITION_FAILED - inequivalent arg 'durable' for queue '" + shared
                + "' in vhost '/': received 'true' but current is 'false'",
                ((AMQP.Channel.Close) sse.getReason()).getReplyText(), "redeclare reply text");
        ch2.queueDelete(shared);
        // a 403 for a reserved name
        Channel ch4 = c.createChannel();
        sse = channelError(() -> ch4.exchangeDeclare("amq.java", "direct"));
        eq(403, ((AMQP.Channel.Close) sse.getReason()).getReplyCode(), "amq. prefix reply code");
        check(ch2.isOpen() && c.isOpen(), "others unaffected");
        c.close();
    }

    static void exchange_binding() throws Exception {
        Connection c = connect();
        Channel ch = c.createChannel();
        String src = PREFIX + "src";
        String mid = PREFIX + "mid";
        ch.exchangeDeclare(src, "topic", false, false, null);
        ch.exchangeDeclare(mid, "direct", false, true, null); // auto-delete
        String q = ch.queueDeclare(PREFIX + "q", false, true, true, null).getQueue();
        ch.exchangeBind(mid, src, "orders.#");
        ch.queueBind(q, mid, "orders.eu");
        ch.basicPublish(src, "orders.eu", null, "eu".getBytes());
        ch.basicPublish(src, "orders.us", null, "us".getBytes());
        ch.basicPublish(src, "invoices.eu", null, "inv".getBytes());
        eq("eu", new String(getOne(ch, q, true).getBody()), "routed through both exchanges");
        Thread.sleep(50);
        check(ch.basicGet(q, true) == null, "nothing else");
        ch.exchangeUnbind(mid, src, "orders.#");
        ch.basicPublish(src, "orders.eu", null, "eu2".getBytes());
        Thread.sleep(50);
        check(ch.basicGet(q, true) == null, "unbound");
        // auto-delete: deleting the queue removes mid's last binding as a source, so mid goes
        ch.queueDelete(q);
        ch.exchangeDeclarePassive(src);
        ShutdownSignalException sse = channelError(() -> ch.exchangeDeclarePassive(mid));
        eq(404, ((AMQP.Channel.Close) sse.getReason()).getReplyCode(), "auto-deleted exchange");
        Channel ch2 = c.createChannel();
        ch2.exchangeDelete(src);
        c.close();
    }

    static void tx() throws Exception {
        Connection c = connect();
        Channel ch = c.createChannel();
        String q = ch.queueDeclare(PREFIX + "q", false, true, true, null).getQueue();
        ch.txSelect();
        ch.basicPublish("", q, null, "rolled-back".getBytes());
        ch.txRollback();
        eq(0, ch.queueDeclarePassive(q).getMessageCount(), "rolled back");
        ch.basicPublish("", q, null, "one".getBytes());
        ch.basicPublish("", q, null, "two".getBytes());
        eq(0, ch.queueDeclarePassive(q).getMessageCount(), "not before commit");
        ch.txCommit();
        eq(2, ch.queueDeclarePassive(q).getMessageCount(), "after commit");
        GetResponse r = ch.basicGet(q, false);
        eq("one", new String(r.getBody()), "first");
        ch.basicAck(r.getEnvelope().getDeliveryTag(), false);
        ch.txCommit();
        // confirm.select on a transactional channel is refused
        ShutdownSignalException sse = channelError(() -> ch.confirmSelect());
        eq(406, ((AMQP.Channel.Close) sse.getReason()).getReplyCode(), "confirm after tx");
        Channel ch2 = c.createChannel();
        eq(1, ch2.queueDeclarePassive(q).getMessageCount(), "the ack was committed");
        c.close();
    }

    static void consumer_cancel_notify() throws Exception {
        Connection c = connect();
        Channel ch = c.createChannel();
        String q = ch.queueDeclare(PREFIX + "q", false, false, false, null).getQueue();
        BlockingQueue<String> cancelled = new LinkedBlockingQueue<>();
        CancelCallback onCancel = cancelled::add;
        String tag = ch.basicConsume(q, true, (consumerTag, message) -> { }, onCancel);
        Channel other = c.createChannel();
        other.queueDelete(q);
        eq(tag, cancelled.poll(10, TimeUnit.SECONDS), "handleCancel got the tag");
        check(ch.isOpen(), "channel stays open");
        c.close();
    }

    static void mandatory_return() throws Exception {
        Connection c = connect();
        Channel ch = c.createChannel();
        BlockingQueue<String> returned = new LinkedBlockingQueue<>();
        ch.addReturnListener((replyCode, replyText, exchange, routingKey, props, body) ->
                returned.add(replyCode + " " + replyText + " " + exchange + " " + routingKey + " "
                        + new String(body)));
        ch.basicPublish("amq.direct", PREFIX + "nowhere", true, null, "lost".getBytes());
        eq("312 NO_ROUTE amq.direct " + PREFIX + "nowhere lost",
                returned.poll(10, TimeUnit.SECONDS), "basic.return");
        // not mandatory: silently dropped
        ch.basicPublish("amq.direct", PREFIX + "nowhere", false, null, "dropped".getBytes());
        check(returned.poll(300, TimeUnit.MILLISECONDS) == null, "no return without mandatory");
        c.close();
    }

    static void qos_prefetch() throws Exception {
        Connection c = connect();
        Channel ch = c.createChannel();
        String q = ch.queueDeclare(PREFIX + "q", false, true, true, null).getQueue();
        for (int i = 0; i < 10; i++) ch.basicPublish("", q, null, ("p" + i).getBytes());
        ch.basicQos(3);
        BlockingQueue<Long> tags = new LinkedBlockingQueue<>();
        ch.basicConsume(q, false, (consumerTag, m) -> tags.add(m.getEnvelope().getDeliveryTag()),
                consumerTag -> { });
        List<Long> first = new ArrayList<>();
        for (int i = 0; i < 3; i++) first.add(tags.poll(10, TimeUnit.SECONDS));
        check(tags.poll(300, TimeUnit.MILLISECONDS) == null, "only 3 unacked deliveries");
        ch.basicAck(first.get(2), true);
        for (int i = 0; i < 3; i++) check(tags.poll(10, TimeUnit.SECONDS) != null, "refill " + i);
        check(tags.poll(300, TimeUnit.MILLISECONDS) == null, "still 3 at most");
        c.close();
    }

    static final Map<String, Scenario> SCENARIOS = new LinkedHashMap<>();

    static {
        SCENARIOS.put("connect_close", JavaClient::connect_close);
        SCENARIOS.put("declare", JavaClient::declare);
        SCENARIOS.put("publish_get", JavaClient::publish_get);
        SCENARIOS.put("consume_ack", JavaClient::consume_ack);
        SCENARIOS.put("confirms", JavaClient::confirms);
        SCENARIOS.put("channel_404", JavaClient::channel_404);
        SCENARIOS.put("exchange_binding", JavaClient::exchange_binding);
        SCENARIOS.put("tx", JavaClient::tx);
        SCENARIOS.put("consumer_cancel_notify", JavaClient::consumer_cancel_notify);
        SCENARIOS.put("mandatory_return", JavaClient::mandatory_return);
        SCENARIOS.put("qos_prefetch", JavaClient::qos_prefetch);
    }

    public static void main(String[] args) {
        if (args.length == 1 && args[0].equals("list")) {
            SCENARIOS.keySet().forEach(System.out::println);
            return;
        }
        if (args.length < 2) {
            System.err.println("usage: JavaClient <host> <port> [scenario...] | list");
            System.exit(64);
        }
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(50000);
                System.out.println("RESULT watchdog FAIL timed out");
                System.out.flush();
                Runtime.getRuntime().halt(2);
            } catch (InterruptedException e) {
                // finished in time
            }
        });
        watchdog.setDaemon(true);
        watchdog.start();
        host = args[0];
        port = Integer.parseInt(args[1]);
        List<String> names = args.length > 2
                ? Arrays.asList(args).subList(2, args.length) : new ArrayList<>(SCENARIOS.keySet());
        boolean allOk = true;
        for (String name : names) {
            Scenario s = SCENARIOS.get(name);
            PREFIX = BASE + name + "-";
            String result;
            if (s == null) {
                result = "FAIL unknown scenario";
            } else {
                try {
                    s.run();
                    result = "OK";
                } catch (Throwable t) {
                    StringBuilder sb = new StringBuilder("FAIL ").append(t);
                    if (t.getCause() != null) sb.append(" caused by ").append(t.getCause());
                    for (StackTraceElement e : t.getStackTrace()) {
                        if (e.getClassName().startsWith("JavaClient")) {
                            sb.append(" at line ").append(e.getLineNumber());
                            break;
                        }
                    }
                    result = sb.toString().replace('\n', ' ');
                }
            }
            for (Connection c : opened) {
                try {
                    if (c.isOpen()) c.abort(2000);
                } catch (Exception ignored) {
                    // best effort
                }
            }
            opened.clear();
            if (!result.equals("OK")) allOk = false;
            System.out.println("RESULT " + name + " " + result);
            System.out.flush();
        }
        System.exit(allOk ? 0 : 1);
    }
}
