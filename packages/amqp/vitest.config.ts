import { geowatchTest } from "../../vitest.shared.mjs";
// One file at a time: the fault test stops and restarts the shared RabbitMQ node.
export default geowatchTest({ fileParallelism: false });
