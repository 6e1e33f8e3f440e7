#!/usr/bin/env node
// amqplib scenarios for tests/integration/test_clients_amqplib.py.
// Usage: node scenarios.js <scenario> <amqp-url>
// Exits 0 and prints "OK <scenario>" on success; prints the failure and exits 1 otherwise
// (2 when the scenario did not finish in time, 64 for bad usage).
'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const amqp = require('amqplib');

const LIMIT_MS = 30000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const uid = `${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
const name = (s) => `w-node-${s}-${uid}`;

// Connections opened by a scenario; closed (and their queues/exchanges deleted) at the end.
const opened = [];
const toDelete = { queues: [], exchanges: [] };

async function connect(url) {
  const conn = await amqp.connect(url, { timeout: 10000 });
  conn.on('error', () => {}); // reported through the promises instead
  opened.push(conn);
  return conn;
}

async function channel(conn, confirm = false) {
  const ch = confirm ? await conn.createConfirmChannel() : await conn.createChannel();
  ch.errors = [];
  ch.closed = false;
  ch.on('error', (e) => ch.errors.push(e));
  ch.on('close', () => {
    ch.closed = true;
  });
  return ch;
}

async function queue(ch, q, opts = {}) {
  const ok = await ch.assertQueue(q, { durable: false, ...opts });
  toDelete.queues.push(ok.queue);
  return ok;
}

async function exchange(ch, x, type, opts = {}) {
  const ok = await ch.assertExchange(x, type, { durable: false, ...opts });
  toDelete.exchanges.push(x);
  return ok;
}

// basic.get until a message arrives (routing is asynchronous to publishing).
async function getOne(ch, q, opts = { noAck: true }) {
  const deadline = Date.now() + 10000;
  for (;;) {
    const m = await ch.get(q, opts);
    if (m) return m;
    if (Date.now() > deadline) throw new Error(`no message in ${q}`);
    await sleep(20);
  }
}

async function waitFor(pred, what, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

async function expectChannelError(ch, promise, code, textStart) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, 'expected the operation to fail');
  assert.equal(err.code, code, `reply code of ${err.message}`);
  if (textStart) assert.ok(err.message.includes(textStart), `message: ${err.message}`);
  await waitFor(() => ch.closed, 'channel close');
  return err;
}

const scenarios = {
  async connect_close(url) {
    const conn = await connect(url);
    const props = conn.connection.serverProperties;
    assert.equal(typeof props.product, 'string');
    assert.equal(typeof props.version, 'string');
    for (const cap of ['publisher_confirms', 'exchange_exchange_bindings', 'basic.nack',
      'consumer_cancel_notify', 'connection.blocked', 'authentication_failure_close']) {
      assert.equal(props.capabilities[cap], true, cap);
    }
    // frame max and channel max negotiated to something usable
    assert.ok(conn.connection.frameMax >= 4096, `frameMax ${conn.connection.frameMax}`);
    const chs = [];
    for (let i = 0; i < 5; i++) chs.push(await channel(conn));
    assert.equal(new Set(chs.map((c) => c.ch)).size, 5);
    await chs[2].close();
    assert.ok(chs[2].closed);
    let closeErr = 'not closed';
    conn.on('close', (e) => {
      closeErr = e;
    });
    await conn.close();
    opened.length = 0;
    assert.equal(closeErr, undefined, 'a clean close has no error');
    // using a closed connection fails on the client side
    await assert.rejects(conn.createChannel());
  },

  async declare_bind(url) {
    const conn = await connect(url);
    const ch = await channel(conn);
    const q = name('q');
    const x = name('x');
    let ok = await queue(ch, q);
    assert.deepEqual(ok, { queue: q, messageCount: 0, consumerCount: 0 });
    ok = await queue(ch, '', { exclusive: true });
    assert.match(ok.queue, /^amq\.gen-/);
    const xok = await exchange(ch, x, 'direct');
    assert.deepEqual(xok, { exchange: x });
    await ch.bindQueue(q, x, 'rk');
    await ch.checkExchange(x);
    ok = await ch.checkQueue(q);
    assert.equal(ok.queue, q);
    ch.publish(x, 'rk', Buffer.from('routed'));
    ch.publish(x, 'other', Buffer.from('dropped'));
    const m = await getOne(ch, q);
    assert.equal(m.content.toString(), 'routed');
    assert.equal(m.fields.exchange, x);
    assert.equal(m.fields.routingKey, 'rk');
    assert.equal(m.fields.messageCount, 0);
    await ch.unbindQueue(q, x, 'rk');
    ch.publish(x, 'rk', Buffer.from('after unbind'));
    await sleep(100);
    assert.equal(await ch.get(q, { noAck: true }), false);
    // redeclare with the same properties is fine; with a different durability is 406
    await ch.assertQueue(q, { durable: false });
    const ch2 = await channel(conn);
    await expectChannelError(ch2, ch2.assertQueue(q, { durable: true }), 406,
      `PRECONDITION_FAILED - inequivalent arg 'durable' for queue '${q}' in vhost '/'`);
    await ch.deleteExchange(x);
    await expectChannelError(ch, ch.checkExchange(x), 404,
      `NOT_FOUND - no exchange '${x}' in vhost '/'`);
  },

  async send_consume_ack(url) {
    const conn = await connect(url);
    const ch = await channel(conn);
    const q = name('q');
    await queue(ch, q);
    const N = 20;
    for (let i = 0; i < N; i++) {
      ch.sendToQueue(q, Buffer.from(`m${i}`), {
        contentType: 'text/plain', contentEncoding: 'utf-8', persistent: true,
        headers: { i, s: 'str', neg: -5, big: 2 ** 40, f: 1.5, b: true, arr: [1, 'a'], t: { k: 'v' } },
        correlationId: `c${i}`, replyTo: 'rq', messageId: `id${i}`, timestamp: 1700000000 + i,
        type: 'ty', appId: 'node', userId: 'guest', priority: 3, expiration: '60000',
      });
    }
    const got = [];
    const { consumerTag } = await ch.consume(q, (m) => {
      got.push(m);
      ch.ack(m);
    }, { noAck: false, consumerTag: name('ctag') });
    assert.equal(consumerTag, name('ctag'));
    await waitFor(() => got.length === N, `${N} deliveries`);
    got.forEach((m, i) => {
      assert.equal(m.content.toString(), `m${i}`);
      assert.equal(m.fields.consumerTag, consumerTag);
      assert.equal(m.fields.deliveryTag, i + 1);
      assert.equal(m.fields.redelivered, false);
      assert.equal(m.fields.exchange, '');
      assert.equal(m.fields.routingKey, q);
      const p = m.properties;
      assert.equal(p.contentType, 'text/plain');
      assert.equal(p.contentEncoding, 'utf-8');
      assert.equal(p.deliveryMode, 2);
      assert.equal(p.correlationId, `c${i}`);
      assert.equal(p.replyTo, 'rq');
      assert.equal(p.messageId, `id${i}`);
      assert.equal(p.timestamp, 1700000000 + i);
      assert.equal(p.type, 'ty');
      assert.equal(p.appId, 'node');
      assert.equal(p.userId, 'guest');
      assert.equal(p.priority, 3);
      assert.equal(p.expiration, '60000');
      assert.deepEqual(p.headers, { i, s: 'str', neg: -5, big: 2 ** 40, f: 1.5, b: true, arr: [1, 'a'], t: { k: 'v' } });
    });
    const cancelOk = await ch.cancel(consumerTag);
    assert.equal(cancelOk.consumerTag, consumerTag);
    const info = await ch.checkQueue(q);
    assert.deepEqual([info.messageCount, info.consumerCount], [0, 0]);
  },

  async topic_publish(url) {
    const conn = await connect(url);
    const ch = await channel(conn);
    const x = name('topic');
    await exchange(ch, x, 'topic');
    const qs = { star: name('star'), hash: name('hash'), exact: name('exact') };
    await queue(ch, qs.star);
    await queue(ch, qs.hash);
    await queue(ch, qs.exact);
    await ch.bindQueue(qs.star, x, 'stock.*.nyse');
    await ch.bindQueue(qs.hash, x, 'stock.#');
    await ch.bindQueue(qs.exact, x, 'stock.ibm.nyse');
    for (const rk of ['stock.ibm.nyse', 'stock.msft.nasdaq', 'stock', 'stock.a.b.nyse', 'bond.x.nyse']) {
      ch.publish(x, rk, Buffer.from(rk));
    }
    const drain = async (q, n) => {
      const out = [];
      for (let i = 0; i < n; i++) out.push((await getOne(ch, q)).content.toString());
      await sleep(50);
      assert.equal(await ch.get(q, { noAck: true }), false, `nothing more in ${q}`);
      return out;
    };
    assert.deepEqual(await drain(qs.star, 1), ['stock.ibm.nyse']);
    assert.deepEqual(await drain(qs.hash, 4), ['stock.ibm.nyse', 'stock.msft.nasdaq', 'stock', 'stock.a.b.nyse']);
    assert.deepEqual(await drain(qs.exact, 1), ['stock.ibm.nyse']);
  },

  async prefetch(url) {
    const conn = await connect(url);
    const ch = await channel(conn);
    const q = name('q');
    await queue(ch, q);
    for (let i = 0; i < 10; i++) ch.sendToQueue(q, Buffer.from(String(i)));
    await ch.prefetch(3);
    const got = [];
    await ch.consume(q, (m) => got.push(m));
    await waitFor(() => got.length === 3, '3 deliveries');
    await sleep(300);
    assert.equal(got.length, 3, 'prefetch 3 allows 3 unacked');
    ch.ack(got[0]);
    await waitFor(() => got.length === 4, '4th delivery');
    ch.ack(got[3], true); // acks 1..4
    await waitFor(() => got.length === 7, '7 deliveries');
    await sleep(200);
    assert.equal(got.length, 7);
    ch.ackAll();
    await waitFor(() => got.length === 10, 'all deliveries');
    assert.deepEqual(got.map((m) => m.content.toString()), ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    ch.ackAll();
  },

  async nack_requeue(url) {
    const conn = await connect(url);
    const ch = await channel(conn);
    const q = name('q');
    await queue(ch, q);
    for (const b of ['a', 'b', 'c']) ch.sendToQueue(q, Buffer.from(b));
    const seen = [];
    const { consumerTag } = await ch.consume(q, (m) => {
      seen.push([m.content.toString(), m.fields.redelivered]);
      if (!m.fields.redelivered) ch.nack(m, false, true);
      else if (m.content.toString() === 'b') ch.reject(m, false);
      else ch.ack(m);
    });
    await waitFor(() => seen.length === 6, '6 deliveries');
    await ch.cancel(consumerTag);
    const first = seen.filter(([, r]) => !r).map(([b]) => b);
    const second = seen.filter(([, r]) => r).map(([b]) => b);
    assert.deepEqual(first, ['a', 'b', 'c']);
    assert.deepEqual(second.sort(), ['a', 'b', 'c']);
    const info = await ch.checkQueue(q);
    assert.equal(info.messageCount, 0);
    // nack of several with allUpTo, then nackAll
    for (const b of ['x', 'y', 'z']) ch.sendToQueue(q, Buffer.from(b));
    const x = await getOne(ch, q, { noAck: false });
    const y = await getOne(ch, q, { noAck: false });
    ch.nack(y, true, true); // x and y go back
    const again = [await getOne(ch, q, { noAck: false }), await getOne(ch, q, { noAck: false }),
      await getOne(ch, q, { noAck: false })];
    assert.deepEqual(again.map((m) => [m.content.toString(), m.fields.redelivered]),
      [['x', true], ['y', true], ['z', false]]);
    assert.equal(x.content.toString(), 'x');
    ch.nackAll(false);
    await sleep(100);
    assert.equal((await ch.checkQueue(q)).messageCount, 0);
  },

  async confirm_channel(url) {
    const conn = await connect(url);
    const ch = await channel(conn, true);
    const q = name('q');
    await queue(ch, q);
    const N = 200;
    let acked = 0;
    for (let i = 0; i < N; i++) {
      ch.sendToQueue(q, Buffer.from(String(i)), {}, (err) => {
        if (!err) acked++;
      });
    }
    await ch.waitForConfirms();
    assert.equal(acked, N);
    assert.equal((await ch.checkQueue(q)).messageCount, N);
    // unroutable messages are confirmed too; mandatory ones come back first
    const returned = [];
    ch.on('return', (m) => returned.push(m));
    let confirmed = false;
    ch.publish('', name('nowhere'), Buffer.from('lost'), { mandatory: true }, (err) => {
      confirmed = !err;
    });
    await ch.waitForConfirms();
    assert.ok(confirmed);
    await waitFor(() => returned.length === 1, 'basic.return');
    assert.equal(returned[0].fields.replyCode, 312);
    assert.equal(returned[0].fields.replyText, 'NO_ROUTE');
    assert.equal(returned[0].content.toString(), 'lost');
    // publishing to a missing exchange closes the channel; the pending confirm fails
    let failed = null;
    ch.publish(name('no-such-x'), 'k', Buffer.from('x'), {}, (err) => {
      failed = err;
    });
    await assert.rejects(ch.waitForConfirms());
    await waitFor(() => ch.closed, 'channel close');
    assert.ok(failed, 'confirm callback got an error');
    assert.equal(ch.errors[0].code, 404);
  },

  async check_queue_missing(url) {
    const conn = await connect(url);
    const ch = await channel(conn);
    const q = name('missing');
    const err = await expectChannelError(ch, ch.checkQueue(q), 404,
      `NOT_FOUND - no queue '${q}' in vhost '/'`);
    assert.equal(err.classId, 50);
    assert.equal(err.methodId, 10);
    assert.equal(ch.errors.length, 1);
    assert.equal(ch.errors[0].code, 404);
    // the connection is fine
    const ch2 = await channel(conn);
    await queue(ch2, name('q'), { exclusive: true });
  },

  async channel_error_isolation(url) {
    const conn = await connect(url);
    const good = await channel(conn);
    const bad = await channel(conn);
    const q = name('q');
    await queue(good, q);
    const got = [];
    await good.consume(q, (m) => {
      got.push(m.content.toString());
      good.ack(m);
    });
    good.sendToQueue(q, Buffer.from('before'));
    await waitFor(() => got.length === 1, 'first delivery');
    // several kinds of channel errors on other channels
    await expectChannelError(bad, bad.checkQueue(name('missing')), 404);
    const bad2 = await channel(conn);
    await expectChannelError(bad2, bad2.assertExchange('amq.direct', 'fanout'), 406);
    const bad3 = await channel(conn);
    await expectChannelError(bad3, bad3.assertExchange('amq.mine', 'direct'), 403, 'ACCESS_REFUSED');
    const bad4 = await channel(conn);
    await expectChannelError(bad4, bad4.bindQueue(q, name('nox'), ''), 404);
    // the consuming channel is unaffected
    good.sendToQueue(q, Buffer.from('after'));
    await waitFor(() => got.length === 2, 'second delivery');
    assert.deepEqual(got, ['before', 'after']);
    assert.equal(good.closed, false);
    assert.equal(good.errors.length, 0);
    // and other connections too
    const conn2 = await connect(url);
    const ch2 = await channel(conn2);
    ch2.sendToQueue(q, Buffer.from('other-conn'));
    await waitFor(() => got.length === 3, 'third delivery');
  },

  async get_empty(url) {
    const conn = await connect(url);
    const ch = await channel(conn);
    const q = name('q');
    await queue(ch, q);
    assert.equal(await ch.get(q), false);
    for (const b of ['1', '2', '3']) ch.sendToQueue(q, Buffer.from(b));
    const m1 = await getOne(ch, q, { noAck: false });
    assert.equal(m1.content.toString(), '1');
    assert.equal(m1.fields.messageCount, 2);
    assert.equal(m1.fields.redelivered, false);
    ch.ack(m1);
    const m2 = await getOne(ch, q, { noAck: true });
    assert.equal(m2.fields.messageCount, 1);
    const m3 = await getOne(ch, q, { noAck: false });
    assert.equal(m3.fields.messageCount, 0);
    assert.equal(await ch.get(q), false);
    ch.reject(m3, true);
    const m3b = await getOne(ch, q, { noAck: true });
    assert.equal(m3b.content.toString(), '3');
    assert.equal(m3b.fields.redelivered, true);
    assert.equal(await ch.get(q), false);
  },

  async large_message(url) {
    const conn = await connect(url);
    const ch = await channel(conn);
    const q = name('q');
    await queue(ch, q);
    const body = crypto.randomBytes(1024 * 1024);
    const digest = crypto.createHash('sha256').update(body).digest('hex');
    ch.sendToQueue(q, body, { headers: { sha: digest } });
    // and one that is exactly a frame's payload, and an empty one
    const fm = conn.connection.frameMax - 8;
    const exact = crypto.randomBytes(fm);
    ch.sendToQueue(q, exact);
    ch.sendToQueue(q, Buffer.alloc(0));
    const got = [];
    await ch.consume(q, (m) => got.push(m), { noAck: true });
    await waitFor(() => got.length === 3, '3 deliveries', 20000);
    assert.equal(got[0].content.length, body.length);
    assert.equal(crypto.createHash('sha256').update(got[0].content).digest('hex'), digest);
    assert.equal(got[0].properties.headers.sha, digest);
    assert.ok(got[1].content.equals(exact));
    assert.equal(got[2].content.length, 0);
  },

  async headers_exchange(url) {
    const conn = await connect(url);
    const ch = await channel(conn);
    const x = name('hx');
    await exchange(ch, x, 'headers');
    const qAll = name('all');
    const qAny = name('any');
    await queue(ch, qAll);
    await queue(ch, qAny);
    await ch.bindQueue(qAll, x, '', { 'x-match': 'all', format: 'pdf', type: 'report' });
    await ch.bindQueue(qAny, x, '', { 'x-match': 'any', format: 'zip', type: 'log' });
    const pub = (body, headers) => ch.publish(x, 'ignored', Buffer.from(body), { headers });
    pub('pdf-report', { format: 'pdf', type: 'report', extra: 1 });
    pub('pdf-only', { format: 'pdf' });
    pub('zip', { format: 'zip' });
    pub('log-report', { format: 'pdf', type: 'log' });
    pub('none', {});
    const drain = async (q, n) => {
      const out = [];
      for (let i = 0; i < n; i++) out.push((await getOne(ch, q)).content.toString());
      await sleep(50);
      assert.equal(await ch.get(q, { noAck: true }), false, `nothing more in ${q}`);
      return out;
    };
    assert.deepEqual(await drain(qAll, 1), ['pdf-report']);
    assert.deepEqual(await drain(qAny, 2), ['zip', 'log-report']);
  },

  async purge_delete(url) {
    const conn = await connect(url);
    const ch = await channel(conn);
    const q = name('q');
    await queue(ch, q);
    for (let i = 0; i < 5; i++) ch.sendToQueue(q, Buffer.from(String(i)));
    let info;
    const deadline = Date.now() + 5000;
    do {
      info = await ch.checkQueue(q);
    } while (info.messageCount < 5 && Date.now() < deadline);
    assert.equal(info.messageCount, 5);
    assert.deepEqual(await ch.purgeQueue(q), { messageCount: 5 });
    assert.deepEqual(await ch.purgeQueue(q), { messageCount: 0 });
    ch.sendToQueue(q, Buffer.from('left'));
    await getOne(ch, q, { noAck: false }).then((m) => ch.reject(m, true));
    // ifEmpty on a queue with a message is refused
    const ch2 = await channel(conn);
    await expectChannelError(ch2, ch2.deleteQueue(q, { ifEmpty: true }), 406,
      `PRECONDITION_FAILED - queue '${q}' in vhost '/' not empty`);
    // ifUnused with a consumer is refused
    const ch3 = await channel(conn);
    await ch3.consume(q, () => {}, { noAck: false });
    const ch4 = await channel(conn);
    await expectChannelError(ch4, ch4.deleteQueue(q, { ifUnused: true }), 406,
      `PRECONDITION_FAILED - queue '${q}' in vhost '/' in use`);
    await ch3.close();
    assert.deepEqual(await ch.deleteQueue(q), { messageCount: 1 });
    // deleting again is fine (idempotent)
    assert.deepEqual(await ch.deleteQueue(q), { messageCount: 0 });
    await expectChannelError(ch, ch.checkQueue(q), 404);
    // exchanges: ifUnused refused while bound
    const ch5 = await channel(conn);
    const x = name('x');
    await exchange(ch5, x, 'fanout');
    await queue(ch5, name('bound'));
    await ch5.bindQueue(name('bound'), x, '');
    await expectChannelError(ch5, ch5.deleteExchange(x, { ifUnused: true }), 406);
    const ch6 = await channel(conn);
    await ch6.deleteExchange(x);
    await ch6.deleteExchange(x);
  },

  async consumer_cancel_notification(url) {
    const conn = await connect(url);
    const ch = await channel(conn);
    const q = name('q');
    await queue(ch, q);
    const seen = [];
    const cancels = [];
    ch.on('cancel', (f) => cancels.push(f.consumerTag));
    const { consumerTag } = await ch.consume(q, (m) => seen.push(m), { noAck: true });
    ch.sendToQueue(q, Buffer.from('one'));
    await waitFor(() => seen.length === 1, 'a delivery');
    const other = await channel(conn);
    await other.deleteQueue(q);
    await waitFor(() => seen.length === 2, 'the cancel notification');
    assert.equal(seen[1], null, 'consume callback gets null on basic.cancel');
    assert.deepEqual(cancels, [consumerTag]);
    // the channel stays open and usable
    assert.equal(ch.closed, false);
    await queue(ch, name('after'), { exclusive: true });
  },

  async exchange_to_exchange(url) {
    const conn = await connect(url);
    const ch = await channel(conn);
    const src = name('src');
    const dst = name('dst');
    await exchange(ch, src, 'direct');
    await exchange(ch, dst, 'fanout');
    await ch.bindExchange(dst, src, 'k');
    const q = name('q');
    await queue(ch, q);
    await ch.bindQueue(q, dst, '');
    ch.publish(src, 'k', Buffer.from('via-e2e'));
    ch.publish(src, 'other', Buffer.from('dropped'));
    assert.equal((await getOne(ch, q)).content.toString(), 'via-e2e');
    await ch.unbindExchange(dst, src, 'k');
    ch.publish(src, 'k', Buffer.from('after-unbind'));
    await sleep(100);
    assert.equal(await ch.get(q, { noAck: true }), false);
  },

  async exclusive_queue_locked(url) {
    const conn = await connect(url);
    const ch = await channel(conn);
    const q = name('excl');
    await ch.assertQueue(q, { exclusive: true });
    const conn2 = await connect(url);
    const ch2 = await channel(conn2);
    await expectChannelError(ch2, ch2.assertQueue(q, { exclusive: true }), 405,
      `RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '${q}' in vhost '/'`);
    // closing the owner deletes the queue
    await conn.close();
    opened.splice(opened.indexOf(conn), 1);
    const ch3 = await channel(conn2);
    await expectChannelError(ch3, ch3.checkQueue(q), 404);
  },

  async recover_requeues(url) {
    const conn = await connect(url);
    const ch = await channel(conn);
    const q = name('q');
    await queue(ch, q);
    for (const b of ['1', '2']) ch.sendToQueue(q, Buffer.from(b));
    const got = [];
    await ch.consume(q, (m) => got.push(m));
    await waitFor(() => got.length === 2, '2 deliveries');
    await ch.recover();
    await waitFor(() => got.length === 4, '2 redeliveries');
    assert.deepEqual(got.map((m) => [m.content.toString(), m.fields.redelivered]),
      [['1', false], ['2', false], ['1', true], ['2', true]]);
    ch.ackAll();
  },

  async dead_letter_x_death(url) {
    const conn = await connect(url);
    const ch = await channel(conn);
    const dlq = name('dlq');
    const q = name('q');
    await queue(ch, dlq, { exclusive: true });
    await queue(ch, q, { exclusive: true, deadLetterExchange: '', deadLetterRoutingKey: dlq });
    ch.sendToQueue(q, Buffer.from('bad'), { expiration: '60000', headers: { app: 1 } });
    const m = await getOne(ch, q, { noAck: false });
    ch.reject(m, false);
    const d = await getOne(ch, dlq);
    assert.equal(d.content.toString(), 'bad');
    assert.equal(d.fields.routingKey, dlq);
    assert.equal(d.properties.expiration, undefined);
    const h = d.properties.headers;
    assert.equal(h.app, 1);
    assert.equal(h['x-first-death-reason'], 'rejected');
    assert.equal(h['x-first-death-queue'], q);
    assert.equal(h['x-first-death-exchange'], '');
    assert.equal(h['x-death'].length, 1);
    const death = h['x-death'][0];
    assert.equal(death.time['!'], 'timestamp');
    assert.ok(Math.abs(death.time.value - Date.now() / 1000) < 30, `time ${death.time.value}`);
    delete death.time;
    assert.deepEqual(death, {
      count: 1, reason: 'rejected', queue: q, exchange: '', 'routing-keys': [q],
      'original-expiration': '60000',
    });
  },

  // connection.update-secret (RabbitMQ's extension): answered with update-secret-ok and the
  // connection keeps working.
  async update_secret(url) {
    const conn = await connect(url);
    await conn.updateSecret(Buffer.from('guest'), 'token refreshed');
    const ch = await channel(conn);
    const q = name('secret');
    await queue(ch, q, { exclusive: true });
    ch.sendToQueue(q, Buffer.from('after-update'));
    const m = await getOne(ch, q);
    assert.equal(m.content.toString(), 'after-update');
    await conn.close();
  },

  async message_ttl_expired(url) {
    const conn = await connect(url);
    const ch = await channel(conn);
    const dlx = name('dlx');
    await exchange(ch, dlx, 'fanout');
    const dlq = name('dlq');
    await queue(ch, dlq, { exclusive: true });
    await ch.bindQueue(dlq, dlx, '');
    const q = name('q');
    await queue(ch, q, { exclusive: true, messageTtl: 100, deadLetterExchange: dlx });
    ch.sendToQueue(q, Buffer.from('queue-ttl'));
    ch.sendToQueue(q, Buffer.from('msg-ttl'), { expiration: '50' });
    const a = await getOne(ch, dlq);
    const b = await getOne(ch, dlq);
    assert.deepEqual([a.content.toString(), b.content.toString()], ['queue-ttl', 'msg-ttl']);
    assert.equal(a.fields.exchange, dlx);
    assert.equal(a.fields.routingKey, q);
    assert.equal(a.properties.headers['x-death'][0].reason, 'expired');
    assert.equal(a.properties.headers['x-death'][0]['original-expiration'], undefined);
    assert.equal(b.properties.headers['x-death'][0]['original-expiration'], '50');
    assert.equal((await ch.checkQueue(q)).messageCount, 0);
    // an invalid expiration closes the channel with RabbitMQ's text
    const bad = await channel(conn);
    bad.sendToQueue(q, Buffer.from('x'), { expiration: 'abc' });
    await expectChannelError(bad, bad.checkQueue(q), 406,
      "PRECONDITION_FAILED - invalid expiration 'abc': no_integer");
  },

  async priority_queue(url) {
    const conn = await connect(url);
    const ch = await channel(conn);
    const q = name('q');
    await queue(ch, q, { exclusive: true, maxPriority: 10 });
    for (const [b, p] of [['p1', 1], ['p7', 7], ['none', undefined], ['p10', 10], ['p7b', 7], ['p99', 99]]) {
      ch.sendToQueue(q, Buffer.from(b), p === undefined ? {} : { priority: p });
    }
    const deadline = Date.now() + 5000;
    while ((await ch.checkQueue(q)).messageCount < 6 && Date.now() < deadline) await sleep(10);
    await ch.prefetch(1);
    const got = [];
    await ch.consume(q, (m) => {
      got.push(m.content.toString());
      ch.ack(m);
    });
    await waitFor(() => got.length === 6, '6 deliveries');
    assert.deepEqual(got, ['p10', 'p99', 'p7', 'p7b', 'p1', 'none']);
    const bad = await channel(conn);
    await expectChannelError(bad, bad.assertQueue(name('bad'), { exclusive: true, maxPriority: 256 }),
      406, `PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '${name('bad')}' in vhost '/': {max_value_exceeded,256}`);
  },

  async reject_publish_confirms(url) {
    const conn = await connect(url);
    const ch = await channel(conn, true);
    const q = name('q');
    await queue(ch, q, { exclusive: true, maxLength: 2, overflow: 'reject-publish' });
    const results = [];
    for (let i = 0; i < 4; i++) {
      ch.sendToQueue(q, Buffer.from(String(i)), {}, (err) => results.push([i, err ? 'nack' : 'ack']));
    }
    await ch.waitForConfirms().catch(() => {});
    await waitFor(() => results.length === 4, '4 confirms');
    results.sort((x, y) => x[0] - y[0]);
    assert.deepEqual(results, [[0, 'ack'], [1, 'ack'], [2, 'nack'], [3, 'nack']]);
    assert.equal((await ch.checkQueue(q)).messageCount, 2);
    assert.equal((await getOne(ch, q)).content.toString(), '0');
    assert.equal(ch.closed, false);
  },

  async direct_reply_to(url) {
    const conn = await connect(url);
    const ch = await channel(conn);
    const rq = name('rpc');
    await queue(ch, rq);
    const replies = [];
    const { consumerTag } = await ch.consume('amq.rabbitmq.reply-to', (m) => replies.push(m), { noAck: true });
    ch.sendToQueue(rq, Buffer.from('2+2'), { replyTo: 'amq.rabbitmq.reply-to', correlationId: 'c7' });
    const server = await connect(url);
    const sch = await channel(server);
    const req = await getOne(sch, rq);
    assert.equal(req.content.toString(), '2+2');
    assert.ok(req.properties.replyTo.startsWith('amq.rabbitmq.reply-to.'), req.properties.replyTo);
    sch.sendToQueue(req.properties.replyTo, Buffer.from('4'), { correlationId: req.properties.correlationId });
    await waitFor(() => replies.length === 1, 'the reply');
    assert.equal(replies[0].content.toString(), '4');
    assert.equal(replies[0].properties.correlationId, 'c7');
    assert.equal(replies[0].fields.consumerTag, consumerTag);
    assert.equal(replies[0].fields.routingKey, req.properties.replyTo);
    // acknowledging mode is refused
    const bad = await channel(conn);
    await expectChannelError(bad, bad.consume('amq.rabbitmq.reply-to', () => {}, { noAck: false }),
      406, 'PRECONDITION_FAILED - reply consumer cannot acknowledge');
  },
};

async function cleanup(url) {
  for (const c of opened.splice(0)) {
    try {
      await c.close();
    } catch (_) {
      // already closed
    }
  }
  if (!toDelete.queues.length && !toDelete.exchanges.length) return;
  const conn = await amqp.connect(url, { timeout: 10000 });
  conn.on('error', () => {});
  for (const q of toDelete.queues) {
    const ch = await conn.createChannel();
    ch.on('error', () => {});
    await ch.deleteQueue(q).catch(() => {});
    await ch.close().catch(() => {});
  }
  for (const x of toDelete.exchanges) {
    const ch = await conn.createChannel();
    ch.on('error', () => {});
    await ch.deleteExchange(x).catch(() => {});
    await ch.close().catch(() => {});
  }
  await conn.close();
}

async function main() {
  const [scenario, url] = process.argv.slice(2);
  if (scenario === 'list') {
    console.log(Object.keys(scenarios).join('\n'));
    return 0;
  }
  if (!scenarios[scenario] || !url) {
    console.error(`usage: node scenarios.js <${Object.keys(scenarios).join('|')}|list> <amqp-url>`);
    return 64;
  }
  const timer = setTimeout(() => {
    console.error(`TIMEOUT ${scenario} after ${LIMIT_MS} ms`);
    process.exit(2);
  }, LIMIT_MS);
  let code = 0;
  try {
    await scenarios[scenario](url);
    console.log(`OK ${scenario}`);
  } catch (e) {
    console.error(`FAIL ${scenario}: ${e && e.stack ? e.stack : e}`);
    code = 1;
  }
  try {
    await cleanup(url);
  } catch (e) {
    console.error(`cleanup failed: ${e && e.stack ? e.stack : e}`);
  }
  clearTimeout(timer);
  return code;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e && e.stack ? e.stack : e);
    process.exit(1);
  },
);
