import { consumerSuite, producerSuite } from "@geowatch/testkit";
import { kafkaConsumer, kafkaProducer } from "../src/index.js";
import { brokers, createTopic, deleteTopics, freshTopic } from "./server.js";

const capabilities = { ordering: "stream", redelivery: true, keys: true, headers: true } as const;

/** A fresh 2-partition topic and one consumer group on it (so a new consumer resumes from the last commit). */
async function channel() {
  const topic = freshTopic("conf");
  await createTopic(topic, 2);
  const common = { brokers: brokers(), topic };
  return {
    producer: () => kafkaProducer(common),
    consumer: () => kafkaConsumer({ ...common, groupId: `g-${topic}`, fromBeginning: true }),
    teardown: () => deleteTopics([topic]),
  };
}

consumerSuite("kafka", { setup: channel, capabilities });
producerSuite("kafka", { setup: channel, capabilities });
