/** Who reads which shard and where it resumes: the coordinator contract and its node:sqlite form (one process). */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";

/** A shard as the stream lists it. */
export interface ShardInfo {
  id: string;
  /** Parent and adjacent parent (a merge has two). */
  parents: string[];
}

/** A shard this process reads, and where it resumes. */
export interface OwnedShard {
  /** The last checkpointed sequence number; undefined when none. */
  checkpoint?: string | undefined;
}

export interface SyncResult {
  owned: Map<string, OwnedShard>;
  /** Shards read to their end and checkpointed as finished. */
  finished: Set<string>;
}

/** Splits the stream's shards between processes and keeps checkpoints. */
export interface Coordinator {
  open(): Promise<void>;
  /** Looks at the shard list and the checkpoints/leases; returns the shards this process reads now. */
  sync(shards: ShardInfo[]): Promise<SyncResult>;
  /** Whether this process still holds the shard (a lease can be lost to another process). */
  owns(shardId: string): boolean;
  /** Stores a checkpoint; `finished` marks the shard read to its end. False when the shard is no longer ours. */
  checkpoint(shardId: string, sequenceNumber: string | undefined, finished: boolean): Promise<boolean>;
  /** Why the coordinator's store cannot be reached, while it cannot. */
  problem(): string | undefined;
  close(): Promise<void>;
}

/**
 * Shards that may be read now: not finished, and every parent finished (or gone from the list: trimmed
 * after the retention period), so records of one partition key come in order across a reshard.
 */
export function eligibleShards(shards: ShardInfo[], finished: Set<string>): string[] {
  const listed = new Set(shards.map((s) => s.id));
  return shards.filter((s) => !finished.has(s.id) && s.parents.every((p) => finished.has(p) || !listed.has(p))).map((s) => s.id);
}

/** Checkpoints in one SQLite file; this process owns every eligible shard. */
export class SqliteCoordinator implements Coordinator {
  private db: DatabaseSync | undefined;
  private owned = new Set<string>();

  constructor(
    private readonly path: string,
    private readonly application: string,
    private readonly stream: string,
  ) {}

  open(): Promise<void> {
    if (this.db) return Promise.resolve();
    if (this.path !== ":memory:") mkdirSync(dirname(this.path), { recursive: true });
    const db = new DatabaseSync(this.path);
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;");
    db.exec(`CREATE TABLE IF NOT EXISTS kinesis_checkpoints (
      application TEXT NOT NULL, stream TEXT NOT NULL, shard_id TEXT NOT NULL,
      sequence_number TEXT, finished INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL,
      PRIMARY KEY (application, stream, shard_id))`);
    this.db = db;
    return Promise.resolve();
  }

  sync(shards: ShardInfo[]): Promise<SyncResult> {
    const db = this.need();
    const rows = db
      .prepare("SELECT shard_id, sequence_number, finished FROM kinesis_checkpoints WHERE application = ? AND stream = ?")
      .all(this.application, this.stream) as Array<{ shard_id: string; sequence_number: string | null; finished: number }>;
    const finished = new Set(rows.filter((r) => r.finished === 1).map((r) => r.shard_id));
    const checkpoints = new Map(rows.map((r) => [r.shard_id, r.sequence_number ?? undefined]));
    const owned = new Map<string, OwnedShard>();
    for (const id of eligibleShards(shards, finished)) owned.set(id, { checkpoint: checkpoints.get(id) });
    this.owned = new Set(owned.keys());
    return Promise.resolve({ owned, finished });
  }

  owns(shardId: string): boolean {
    return this.owned.has(shardId);
  }

  checkpoint(shardId: string, sequenceNumber: string | undefined, finished: boolean): Promise<boolean> {
    this.need()
      .prepare(
        `INSERT INTO kinesis_checkpoints (application, stream, shard_id, sequence_number, finished, updated_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (application, stream, shard_id) DO UPDATE SET
           sequence_number = COALESCE(excluded.sequence_number, sequence_number), finished = MAX(finished, excluded.finished), updated_at = excluded.updated_at`,
      )
      .run(this.application, this.stream, shardId, sequenceNumber ?? null, finished ? 1 : 0, Date.now());
    if (finished) this.owned.delete(shardId);
    return Promise.resolve(true);
  }

  problem(): string | undefined {
    return undefined;
  }

  close(): Promise<void> {
    this.db?.close();
    this.db = undefined;
    return Promise.resolve();
  }

  private need(): DatabaseSync {
    if (!this.db) throw new Error("checkpoint database is not open");
    return this.db;
  }
}
