// Credential types and credentials as the API answers them, for the components' tests.
import { vi } from "vitest";
import type { Api } from "../api";
import type { Credential, CredentialType } from "../types";

export const bearerType: CredentialType = {
  type: "bearer_token",
  display_name: "Bearer token",
  description: "Authorization: Bearer.",
  secret_fields: ["token"],
  fields_schema: {
    type: "object",
    title: "BearerTokenFields",
    additionalProperties: false,
    required: ["token"],
    properties: {
      token: { type: "string", title: "Token", writeOnly: true, format: "password", minLength: 1 },
    },
  },
};

export const basicType: CredentialType = {
  type: "basic_auth",
  display_name: "Basic auth",
  description: "Authorization: Basic.",
  secret_fields: ["password"],
  fields_schema: {
    type: "object",
    title: "BasicAuthFields",
    additionalProperties: false,
    required: ["username", "password"],
    properties: {
      username: { type: "string", title: "Username" },
      password: { type: "string", title: "Password", writeOnly: true, format: "password" },
    },
  },
};

export function credential(overrides: Partial<Credential> = {}): Credential {
  return {
    id: "cred-1",
    type: "basic_auth",
    name: "Shop",
    owner: "u1",
    fields: { username: "alice" },
    secrets: { password: "****" },
    created_at: "2026-12-01T10:00:00Z",
    updated_at: "2026-12-01T10:00:00Z",
    last_used: null,
    ...overrides,
  };
}

/** An Api whose credential routes are mocks (the rest is not used by these components). */
export function fakeApi(items: Credential[], types: CredentialType[] = [bearerType, basicType]) {
  const mocks = {
    listCredentials: vi.fn(async () => items),
    credentialTypes: vi.fn(async () => types),
    createCredential: vi.fn(),
    updateCredential: vi.fn(),
    deleteCredential: vi.fn(async () => undefined),
  };
  return { api: mocks as unknown as Api, mocks };
}
