/**
 * Replacement for kafkajs 2.2.4's `producer/groupMessagesPerPartition`: the same object (partition -> messages in
 * order, the partitioner called once per message with the same arguments) in one pass. kafkajs copied the
 * partition's array for every message, so a request's grouping took time quadratic in its size.
 */
type Partitioner = (args: { topic: string; partitionMetadata: unknown[]; message: unknown }) => number;

export function groupMessagesPerPartition({
  topic,
  partitionMetadata,
  messages,
  partitioner,
}: {
  topic: string;
  partitionMetadata: unknown[];
  messages: unknown[];
  partitioner: Partitioner;
}): Record<string, unknown[]> {
  if (partitionMetadata.length === 0) return {};
  const result: Record<string, unknown[]> = {};
  for (const message of messages) {
    const partition = partitioner({ topic, partitionMetadata, message });
    const current = result[partition];
    if (current) current.push(message);
    else result[partition] = [message];
  }
  return result;
}
