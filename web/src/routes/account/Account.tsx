import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type SyntheticEvent } from "react";
import { useNavigate } from "react-router";
import { formErrors } from "../../api/problem";
import { sessionFrom, sessionStore } from "../../auth/session";
import { useSession } from "../../auth/useSession";
import { Field, SelectField } from "../../components/Field";
import { FormError } from "../../components/FormError";
import { ListState } from "../../components/ListState";
import { AccountNav } from "./AccountNav";
import { accountKeys, changePassword, getMe, switchOrganization } from "./api";
import "./account.css";

const PASSWORD_FIELDS = ["current_password", "new_password"] as const;

/** Who is signed in, where: switch organization, change password. */
export default function Account() {
  const session = useSession();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const me = useQuery({ queryKey: accountKeys.me, queryFn: getMe });
  const [target, setTarget] = useState("");
  const switching = useMutation({
    mutationFn: switchOrganization,
    onSuccess: async (answer) => {
      sessionStore.set(sessionFrom(answer));
      queryClient.clear(); // everything cached belongs to the other organization
      await navigate("/", { replace: true });
    },
  });
  const switchErrors = formErrors(switching.error, ["organization_id"]);

  const [passwords, setPasswords] = useState({ current_password: "", new_password: "" });
  const [changed, setChanged] = useState(false);
  const password = useMutation({
    mutationFn: changePassword,
    onSuccess: (answer) => {
      sessionStore.set(sessionFrom(answer));
      setPasswords({ current_password: "", new_password: "" });
      setChanged(true);
    },
  });
  const passwordErrors = formErrors(password.error, PASSWORD_FIELDS);

  function submitSwitch(event: SyntheticEvent<HTMLFormElement>) {
    event.preventDefault();
    if (target) switching.mutate(target);
  }

  function submitPassword(event: SyntheticEvent<HTMLFormElement>) {
    event.preventDefault();
    setChanged(false);
    password.mutate(passwords);
  }

  const others = (me.data?.memberships ?? []).filter((m) => m.organization_id !== session?.organization.id);

  return (
    <div className="account">
      <h1>Your account</h1>
      <AccountNav />
      <div className="columns">
        <section aria-labelledby="profile-title">
          <h2 id="profile-title">Profile</h2>
          {session ? (
            <dl className="facts">
              <dt>Name</dt>
              <dd>{session.user.name ?? "—"}</dd>
              <dt>Email</dt>
              <dd>{session.user.email}</dd>
              <dt>Organization</dt>
              <dd>{session.organization.name}</dd>
              <dt>Role</dt>
              <dd>{session.role}</dd>
            </dl>
          ) : null}
          <h2 id="switch-title">Switch organization</h2>
          <ListState
            label="your organizations"
            isPending={me.isPending}
            error={me.error}
            items={others}
            onRetry={() => {
              void me.refetch();
            }}
            empty={<p>You belong to no other organization.</p>}
          >
            {(items) => (
              <form onSubmit={submitSwitch} noValidate aria-labelledby="switch-title">
                <FormError errors={switchErrors} />
                <SelectField
                  label="Organization"
                  name="organization_id"
                  value={target}
                  onChange={(e) => {
                    setTarget(e.target.value);
                  }}
                  error={switchErrors.fields.organization_id}
                >
                  <option value="">Choose…</option>
                  {items.map((m) => (
                    <option key={m.organization_id} value={m.organization_id}>
                      {m.organization_name} ({m.role})
                    </option>
                  ))}
                </SelectField>
                <button type="submit" disabled={!target || switching.isPending}>
                  {switching.isPending ? "Switching…" : "Switch"}
                </button>
              </form>
            )}
          </ListState>
        </section>
        <section aria-labelledby="password-title">
          <h2 id="password-title">Change password</h2>
          <form onSubmit={submitPassword} noValidate aria-labelledby="password-title">
            {changed ? (
              <p role="status" className="notice">
                Password changed. Your other sessions were signed out.
              </p>
            ) : null}
            <FormError errors={passwordErrors} />
            <Field
              label="Current password"
              name="current_password"
              type="password"
              autoComplete="current-password"
              value={passwords.current_password}
              onChange={(e) => {
                setPasswords((p) => ({ ...p, current_password: e.target.value }));
              }}
              error={passwordErrors.fields.current_password}
            />
            <Field
              label="New password"
              name="new_password"
              type="password"
              autoComplete="new-password"
              hint="12 to 256 characters."
              value={passwords.new_password}
              onChange={(e) => {
                setPasswords((p) => ({ ...p, new_password: e.target.value }));
              }}
              error={passwordErrors.fields.new_password}
            />
            <button type="submit" disabled={password.isPending}>
              {password.isPending ? "Changing…" : "Change password"}
            </button>
          </form>
        </section>
      </div>
    </div>
  );
}
