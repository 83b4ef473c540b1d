/** The account screens' API calls (auth service: members, invites, API keys; brand service: credentials). */
import { api, unwrap } from "../../api/client";
import type { components } from "../../api/schema";

export type Role = components["schemas"]["Role"];
export type MemberRead = components["schemas"]["MemberRead"];
export type InviteRead = components["schemas"]["InviteRead"];
export type InviteCreate = components["schemas"]["InviteCreate"];
export type ApiKeyRead = components["schemas"]["ApiKeyRead"];
export type ApiKeyCreate = components["schemas"]["ApiKeyCreate"];
export type CredentialRead = components["schemas"]["CredentialRead"];
export type CredentialCreate = components["schemas"]["CredentialCreate"];
export type PasswordChange = components["schemas"]["PasswordChange"];
export type SecretState = components["schemas"]["SecretState"];

export const ROLES: readonly Role[] = ["viewer", "member", "admin", "owner"];

/** Whether ``role`` is at least ``needed`` (viewer < member < admin < owner). */
export function atLeast(role: Role, needed: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(needed);
}

/** The roles someone with ``role`` may hand out (never above their own). */
export function grantable(role: Role): Role[] {
  return ROLES.filter((candidate) => atLeast(role, candidate));
}

/** A stored secret as the API shows it: never the secret, only whether it is set and its last four. */
export function describeSecret(state: SecretState | null): string {
  if (!state?.set) return "Not set";
  return state.last4 ? `Set, ending in ${state.last4}` : "Set";
}

/** Scopes an API key may carry (the closed set the auth service checks). */
export const SCOPES = [
  "*",
  "brands:read",
  "brands:write",
  "credentials:read",
  "credentials:write",
  "campaigns:read",
  "campaigns:write",
  "leads:read",
  "leads:write",
  "suppressions:read",
  "suppressions:write",
  "messages:read",
  "webhooks:read",
  "webhooks:write",
  "members:read",
  "api_keys:read",
] as const;

export const accountKeys = {
  me: ["auth", "me"] as const,
  members: ["auth", "members"] as const,
  invites: ["auth", "invites"] as const,
  apiKeys: ["auth", "api-keys"] as const,
  credentials: ["credentials"] as const,
};

export const getMe = () => unwrap(api.GET("/api/auth/me"));
export const switchOrganization = (organizationId: string) =>
  unwrap(api.POST("/api/auth/switch", { body: { organization_id: organizationId } }));
export const changePassword = (body: PasswordChange) => unwrap(api.POST("/api/auth/password", { body }));
export const acceptInvite = (body: components["schemas"]["InviteAccept"]) =>
  unwrap(api.POST("/api/auth/invites/accept", { body }));

export const listMembers = () => unwrap(api.GET("/api/auth/members", { params: { query: { limit: 100 } } }));
export const updateMember = (memberId: string, role: Role) =>
  unwrap(api.PATCH("/api/auth/members/{member_id}", { params: { path: { member_id: memberId } }, body: { role } }));
export const removeMember = (memberId: string) =>
  unwrap(api.DELETE("/api/auth/members/{member_id}", { params: { path: { member_id: memberId } } }));

export const listInvites = () => unwrap(api.GET("/api/auth/invites", { params: { query: { limit: 100 } } }));
export const createInvite = (body: InviteCreate) => unwrap(api.POST("/api/auth/invites", { body }));
export const revokeInvite = (inviteId: string) =>
  unwrap(api.DELETE("/api/auth/invites/{invite_id}", { params: { path: { invite_id: inviteId } } }));

export const listApiKeys = () => unwrap(api.GET("/api/auth/api-keys", { params: { query: { limit: 100 } } }));
export const createApiKey = (body: ApiKeyCreate) => unwrap(api.POST("/api/auth/api-keys", { body }));
export const revokeApiKey = (keyId: string) =>
  unwrap(api.DELETE("/api/auth/api-keys/{key_id}", { params: { path: { key_id: keyId } } }));

export const listCredentials = () => unwrap(api.GET("/api/credentials", { params: { query: { limit: 100 } } }));
export const createCredential = (body: CredentialCreate) => unwrap(api.POST("/api/credentials", { body }));
export const deleteCredential = (credentialId: string) =>
  unwrap(api.DELETE("/api/credentials/{credential_id}", { params: { path: { credential_id: credentialId } } }));

/** The link that accepts an invite: the token rides in the fragment, which never reaches a server log. */
export function inviteLink(token: string, origin: string = globalThis.location.origin): string {
  return `${origin}/invite#${encodeURIComponent(token)}`;
}

/** The invite token of an acceptance link (fragment, or ``?token=`` for links typed by hand). */
export function inviteToken(hash: string, search: string): string {
  const fromHash = decodeURIComponent(hash.replace(/^#/, "").replace(/^token=/, ""));
  return fromHash || (new URLSearchParams(search).get("token") ?? "");
}
