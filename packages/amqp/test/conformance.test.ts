import { consumerSuite, producerSuite } from "@geowatch/testkit";
import { amqpConsumer, amqpProducer } from "../src/index.js";
import { admin, amqpUrl, deleteAll, quiet, uniqueName } from "./helpers.js";

const capabilities = { acks: true, ordering: "none", redelivery: true, nackRequeue: true, keys: true, headers: true } as const;

/** A fresh topic exchange and a durable queue bound to it with `conf.#`, both deleted afterwards. */
async function channel() {
  const url = amqpUrl();
  const exchange = uniqueName("conf.x");
  const queue = uniqueName("conf.q");
  const conn = await admin();
  const ch = await conn.createChannel();
  await ch.assertExchange(exchange, "topic", { durable: true });
  await ch.assertQueue(queue, { durable: true });
  await ch.bindQueue(queue, exchange, "conf.#");
  await ch.close();
  return {
    producer: () => amqpProducer({ url, exchange, routingKey: "conf.record" }),
    consumer: () => amqpConsumer({ url, exchange, queue, bindings: ["conf.#"], prefetch: 50 }, { logger: quiet }),
    teardown: async () => {
      await deleteAll(conn, [queue], [exchange]);
      await conn.close();
    },
  };
}

consumerSuite("amqp", { setup: channel, capabilities });
producerSuite("amqp", { setup: channel, capabilities });
