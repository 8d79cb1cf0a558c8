/** The parts of kafkajs 2.2.4's internals the replacements use, typed as far as they use them. */

export interface EncoderLike {
  buf: Buffer;
  offset: number;
  readonly buffer: Buffer;
  size(): number;
  ensureAvailable(length: number): void;
  writeInt8(v: number): EncoderLike;
  writeInt16(v: number): EncoderLike;
  writeInt32(v: number): EncoderLike;
  writeUInt32(v: number): EncoderLike;
  writeInt64(v: unknown): EncoderLike;
  writeBuffer(v: Buffer): EncoderLike;
  writeString(v: string | null): EncoderLike;
  writeEncoder(v: EncoderLike): EncoderLike;
  writeArray(array: unknown[], type?: string): EncoderLike;
  writeEncoderArray(array: unknown[]): EncoderLike;
  writeUVarInt(v: number): EncoderLike;
  writeVarLong(v: unknown): EncoderLike;
}

export interface EncoderClass {
  new (initialSize?: number): EncoderLike;
  prototype: EncoderLike;
  sizeOfVarInt(v: number): number;
  sizeOfVarLong(v: unknown): number;
  sizeOfVarIntBytes(v: unknown): number;
}

export interface DecoderLike {
  buffer: Buffer;
  offset: number;
  readInt8(): number;
  readInt16(): number;
  readInt32(): number;
  readInt64(): { toString(): string };
  readVarInt(): number;
  readVarLong(): unknown;
  readVarIntBytes(): Buffer | null;
  readVarIntArray<T>(reader: (d: DecoderLike) => T): T[];
  readAll(): Buffer;
  canReadBytes(n: number): boolean;
  slice(size: number): DecoderLike;
  forward(size: number): void;
}

export interface DecoderClass {
  new (buffer: Buffer): DecoderLike;
  prototype: DecoderLike;
}

export interface LongLike {
  add(v: unknown): LongLike;
  toString(): string;
}

export interface LongClass {
  fromInt(v: number): LongLike;
  fromValue(v: unknown): LongLike;
}

export interface Codec {
  compress(encoder: EncoderLike): Promise<Buffer>;
  decompress(buffer: Buffer): Promise<Buffer>;
}

export interface Compression {
  Types: { None: number };
  COMPRESSION_CODEC_MASK: number;
  lookupCodec(type: number): Codec;
  lookupCodecByAttributes(attributes: number): Codec | undefined;
}

export interface KafkajsInternals {
  Encoder: EncoderClass;
  Decoder: DecoderClass;
  Long: LongClass;
  compression: Compression;
  /** `recordBatch/record/v0/decoder`: one record from a decoder over its bytes. */
  RecordDecoder: (d: DecoderLike, context: object) => unknown;
  HeaderDecoder: (d: DecoderLike) => { key: string; value: Buffer | null };
  KafkaJSPartialMessageError: new (message: string) => Error;
  LOG_APPEND_TIME: number;
  CREATE_TIME: number;
}
