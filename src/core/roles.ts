/**
 * Roles, permission bits and commands: the vocabulary of authorization.
 *
 * Guarantees: closed sets with fixed wire codes; a role's mask is the most a
 * credential of that role can ever do (a grant may narrow it, never widen it).
 * Owners are defined by the key list, never by a grant.
 */

export const Permission = {
  unlock: 0x0001,
  lock: 0x0002,
  start: 0x0004,
  trunk: 0x0008,
  status: 0x0010,
  /** key management: deliver key lists, read the audit log */
  keyManagement: 0x0020,
  /** walk-up (passive) unlock gated on proximity */
  passive: 0x0040,
  /** sound the horn (find the car) */
  honk: 0x0080,
  /** flash the lights (find the car) */
  flash: 0x0100,
} as const;
export type PermissionName = keyof typeof Permission;
export const ALL_PERMISSIONS = Object.values(Permission).reduce((a, b) => a | b, 0);

export const Role = { owner: 1, driver: 2, guest: 3, monitor: 4 } as const;
export type RoleName = keyof typeof Role;

export const ROLE_MASK: Readonly<Record<RoleName, number>> = {
  owner: ALL_PERMISSIONS,
  driver: Permission.unlock | Permission.lock | Permission.start | Permission.trunk | Permission.status | Permission.passive | Permission.honk | Permission.flash,
  guest: Permission.unlock | Permission.lock | Permission.start | Permission.status | Permission.flash,
  monitor: Permission.status,
};

/** Longest validity window per grantable role (guests are time-boxed). */
export const MAX_GRANT_WINDOW_MS: Readonly<Record<Exclude<RoleName, 'owner'>, number>> = {
  driver: 5 * 365 * 24 * 3600 * 1000,
  guest: 30 * 24 * 3600 * 1000,
  monitor: 5 * 365 * 24 * 3600 * 1000,
};

export function roleName(code: number): RoleName | undefined {
  return (Object.keys(Role) as RoleName[]).find((name) => Role[name] === code);
}

export const Command = {
  unlock: 1,
  lock: 2,
  start: 3,
  trunk: 4,
  status: 5,
  passiveUnlock: 6,
  keyListPush: 7,
  auditRead: 8,
  keyListGet: 9,
  /** the car signs a fresh vehicle statement (cloud registration, forwarded by an owner) */
  vehicleStatement: 10,
  /** sound the horn once */
  honk: 11,
  /** flash the lights once */
  flash: 12,
} as const;
export type CommandName = keyof typeof Command;

export const COMMAND_PERMISSION: Readonly<Record<CommandName, number>> = {
  unlock: Permission.unlock,
  lock: Permission.lock,
  start: Permission.start,
  trunk: Permission.trunk,
  status: Permission.status,
  passiveUnlock: Permission.unlock | Permission.passive,
  keyListPush: Permission.keyManagement,
  auditRead: Permission.keyManagement,
  keyListGet: Permission.keyManagement,
  vehicleStatement: Permission.keyManagement,
  honk: Permission.honk,
  flash: Permission.flash,
};

export function commandName(code: number): CommandName | undefined {
  return (Object.keys(Command) as CommandName[]).find((name) => Command[name] === code);
}

export function permissionNames(mask: number): PermissionName[] {
  return (Object.keys(Permission) as PermissionName[]).filter((name) => (mask & Permission[name]) !== 0);
}
