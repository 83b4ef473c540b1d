import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type SyntheticEvent } from "react";
import { formErrors } from "../../api/problem";
import { useSession } from "../../auth/useSession";
import { Field, SelectField } from "../../components/Field";
import { FormError } from "../../components/FormError";
import { ListState } from "../../components/ListState";
import { AccountNav } from "./AccountNav";
import { accountKeys, atLeast, createApiKey, grantable, listApiKeys, revokeApiKey, SCOPES, type Role } from "./api";
import { Secret } from "./Secret";
import "./account.css";

const FIELDS = ["name", "role", "scopes", "expires_at"] as const;

/** The organization's API keys: create (role, scopes), the secret shown once, revoke. Admins and owners. */
export default function ApiKeys() {
  const session = useSession();
  const queryClient = useQueryClient();
  const allowed = session ? atLeast(session.role, "admin") : false;
  const keysQuery = useQuery({ queryKey: accountKeys.apiKeys, queryFn: listApiKeys, enabled: allowed });
  const [name, setName] = useState("");
  const [role, setRole] = useState<Role>("member");
  const [scopes, setScopes] = useState<string[]>([]);
  const [secret, setSecret] = useState<{ name: string; key: string } | null>(null);
  const create = useMutation({
    mutationFn: createApiKey,
    onSuccess: async (created) => {
      setSecret({ name: created.name, key: created.key });
      setName("");
      setScopes([]);
      await queryClient.invalidateQueries({ queryKey: accountKeys.apiKeys });
    },
  });
  const revoke = useMutation({
    mutationFn: revokeApiKey,
    onSuccess: () => queryClient.invalidateQueries({ queryKey: accountKeys.apiKeys }),
  });
  const errors = formErrors(create.error, FIELDS);

  if (!session) return null;
  if (!allowed) {
    return (
      <div className="account">
        <h1>API keys</h1>
        <AccountNav />
        <p>Only admins and owners manage API keys.</p>
      </div>
    );
  }

  function submit(event: SyntheticEvent<HTMLFormElement>) {
    event.preventDefault();
    setSecret(null);
    create.mutate({ name, role, scopes });
  }

  function toggle(scope: string, on: boolean) {
    setScopes((previous) => (on ? [...previous, scope] : previous.filter((s) => s !== scope)));
  }

  const live = (keysQuery.data?.items ?? []).filter((key) => !key.revoked_at);
  return (
    <div className="account">
      <h1>API keys</h1>
      <AccountNav />
      <div className="columns">
        <section aria-labelledby="keys-title">
          <h2 id="keys-title">Keys</h2>
          {revoke.error ? <FormError errors={formErrors(revoke.error, [])} /> : null}
          <ListState
            label="API keys"
            isPending={keysQuery.isPending}
            error={keysQuery.error}
            items={live}
            onRetry={() => {
              void keysQuery.refetch();
            }}
            empty={<p>No API keys yet.</p>}
          >
            {(items) => (
              <ul className="cards" aria-label="API keys">
                {items.map((key) => (
                  <li key={key.id} className="card">
                    <h3>{key.name}</h3>
                    <p>
                      <code>{key.prefix}…</code> · {key.role}
                    </p>
                    <p>Scopes: {key.scopes.join(", ")}</p>
                    <p>Last used: {key.last_used_at ? new Date(key.last_used_at).toLocaleString() : "never"}</p>
                    <button
                      type="button"
                      disabled={revoke.isPending}
                      onClick={() => {
                        revoke.mutate(key.id);
                      }}
                    >
                      Revoke {key.name}
                    </button>
                  </li>
                ))}
              </ul>
            )}
          </ListState>
        </section>
        <section aria-labelledby="new-key-title">
          <h2 id="new-key-title">Create an API key</h2>
          {secret ? <Secret label={`The secret of ${secret.name}.`} value={secret.key} /> : null}
          <form onSubmit={submit} noValidate aria-labelledby="new-key-title">
            <FormError errors={errors} />
            <Field
              label="Key name"
              name="name"
              value={name}
              onChange={(e) => {
                setName(e.target.value);
              }}
              error={errors.fields.name}
            />
            <SelectField
              label="Key role"
              name="role"
              hint="At most your own role."
              value={role}
              onChange={(e) => {
                setRole(e.target.value as Role);
              }}
              error={errors.fields.role}
            >
              {grantable(session.role).map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </SelectField>
            <fieldset className="scopes" aria-describedby={errors.fields.scopes ? "scopes-error" : undefined}>
              <legend>Scopes</legend>
              {SCOPES.map((scope) => (
                <label key={scope}>
                  <input
                    type="checkbox"
                    name="scopes"
                    value={scope}
                    checked={scopes.includes(scope)}
                    onChange={(e) => {
                      toggle(scope, e.target.checked);
                    }}
                  />
                  {scope === "*" ? "* (every area)" : scope}
                </label>
              ))}
              {errors.fields.scopes ? (
                <p id="scopes-error" className="field__error" role="alert">
                  {errors.fields.scopes}
                </p>
              ) : null}
            </fieldset>
            <button type="submit" disabled={create.isPending}>
              {create.isPending ? "Creating…" : "Create key"}
            </button>
          </form>
        </section>
      </div>
    </div>
  );
}
