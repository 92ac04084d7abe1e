/**
 * What carkey-cloud keeps, and the one interface both databases implement
 * (sqlite-store.ts, pg-store.ts; shared SQL in sql-store.ts).
 *
 * Guarantees every implementation gives (test/cloud/store.test.ts runs the
 * same tests on both):
 * - Documents are stored and returned as the exact bytes they arrived as;
 *   the store never decodes, re-encodes or re-signs them.
 * - Every change that a reader can wait for is atomic and, once committed,
 *   wakes the subscribers of its topic (in this process for SQLite, in every
 *   process on the database for PostgreSQL). Wake-ups are hints: a waiter
 *   always re-reads, so a lost or duplicated wake-up costs time, never
 *   correctness.
 * - Compare-and-set operations (`updateKeyList`, `appendAudit`, `putResult`,
 *   `rememberNonce`, `insertVehicle`, `putCommand`) tell the caller when the
 *   row was not as expected, so two instances racing on one database never
 *   both win.
 * - Failures of the database itself are CK_CLOUD_STORE (503), never a
 *   driver error.
 */
import type { Dialect } from './migrations.js';

/** A registered vehicle and the key list the cloud holds for it. */
export interface VehicleRecord {
  /** 32 lowercase hex */
  readonly vehicleId: string;
  readonly vehicleKey: Uint8Array;
  /** the last vehicle statement that moved the list (exact bytes) */
  readonly statement: Uint8Array;
  /** the current key list (exact bytes) */
  readonly keyList: Uint8Array;
  readonly epoch: number;
  readonly version: number;
  readonly registeredAt: number;
  readonly updatedAt: number;
}

export interface KeyListState {
  readonly epoch: number;
  readonly version: number;
}

export interface KeyListUpdate extends KeyListState {
  readonly keyList: Uint8Array;
  /** a new statement (registration path); undefined keeps the stored one */
  readonly statement?: Uint8Array;
  readonly updatedAt: number;
}

export interface MailboxItem {
  /** 32 lowercase hex */
  readonly id: string;
  /** 64 lowercase hex */
  readonly recipient: string;
  readonly sender: string;
  readonly vehicleId: string;
  readonly box: Uint8Array;
  readonly postedAt: number;
  readonly expiresAt: number;
}

export interface StoredAuditEntry {
  readonly seq: number;
  readonly time: number;
  readonly kind: string;
  /** canonical JSON text of the fields (audit.ts canonicalAuditFields) */
  readonly fields: string;
  readonly hash: Uint8Array;
}

export interface StoredCheckpoint {
  readonly seq: number;
  readonly hash: Uint8Array;
  readonly signature: Uint8Array;
}

export interface CommandRecord {
  readonly vehicleId: string;
  readonly commandId: string;
  /** the key that posted it, 64 hex */
  readonly caller: string;
  readonly box: Uint8Array;
  readonly postedAt: number;
  readonly expiresAt: number;
  readonly result: Uint8Array | undefined;
  readonly resultAt: number | undefined;
}

export interface PurgeCounts {
  readonly nonces: number;
  readonly mailbox: number;
  readonly commands: number;
}

/** Topics a long-poll can wait on. */
export const topics = {
  keyList: (vehicleId: string): string => `key-list:${vehicleId}`,
  commands: (vehicleId: string): string => `commands:${vehicleId}`,
  result: (vehicleId: string, commandId: string): string => `result:${vehicleId}:${commandId}`,
} as const;

export interface CloudStore {
  readonly dialect: Dialect;
  /** Apply pending migrations; the schema version afterwards. */
  migrate(now: number): Promise<number>;
  /** Resolves when the database answers (GET /ready). */
  ping(): Promise<void>;
  close(): Promise<void>;

  /** Call `listener` after each committed change of `topic` (see the header). Returns the unsubscribe function. */
  subscribe(topic: string, listener: () => void): () => void;

  getVehicle(vehicleId: string): Promise<VehicleRecord | undefined>;
  /** Register a vehicle; false when it already exists. */
  insertVehicle(record: VehicleRecord): Promise<boolean>;
  /** Replace the key list if the stored one is still `expected`; false otherwise. */
  updateKeyList(vehicleId: string, expected: KeyListState, next: KeyListUpdate): Promise<boolean>;

  /** Remember a request nonce until `expiresAt`; false when it was already seen. */
  rememberNonce(caller: string, nonce: string, expiresAt: number): Promise<boolean>;

  putMailboxItem(item: MailboxItem): Promise<void>;
  /** The recipient's items with expiresAt > now, oldest first. */
  listMailbox(recipient: string, now: number, limit: number): Promise<readonly MailboxItem[]>;
  /** Delete the recipient's item; false when there is no such item for this recipient. */
  deleteMailboxItem(recipient: string, id: string): Promise<boolean>;

  /** The stored entry with the highest seq. */
  auditHead(vehicleId: string): Promise<StoredAuditEntry | undefined>;
  /** Entries with seq in [fromSeq, toSeq], in seq order. */
  auditEntries(vehicleId: string, fromSeq: number, toSeq: number): Promise<readonly StoredAuditEntry[]>;
  auditCheckpoints(vehicleId: string, fromSeq: number, toSeq: number): Promise<readonly StoredCheckpoint[]>;
  /** Insert entries and checkpoints in one transaction; false (nothing stored) when any seq is already there. */
  appendAudit(vehicleId: string, entries: readonly StoredAuditEntry[], checkpoints: readonly StoredCheckpoint[], storedAt: number): Promise<boolean>;

  /** Store a command; false when its id is already used for this vehicle. */
  putCommand(record: CommandRecord): Promise<boolean>;
  /** Unanswered commands with expiresAt > now, oldest first. */
  pendingCommands(vehicleId: string, now: number, limit: number): Promise<readonly CommandRecord[]>;
  getCommand(vehicleId: string, commandId: string): Promise<CommandRecord | undefined>;
  /** Store the result of a command that has none yet; false when it is missing or already answered. */
  putResult(vehicleId: string, commandId: string, box: Uint8Array, at: number): Promise<boolean>;

  /** Delete expired nonces, mailbox items, and commands that expired before `commandsBefore`. */
  purgeExpired(now: number, commandsBefore: number): Promise<PurgeCounts>;
}
