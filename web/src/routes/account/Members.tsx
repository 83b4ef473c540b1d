import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type SyntheticEvent } from "react";
import { formErrors } from "../../api/problem";
import { useSession } from "../../auth/useSession";
import { Field, SelectField } from "../../components/Field";
import { FormError } from "../../components/FormError";
import { ListState } from "../../components/ListState";
import { AccountNav } from "./AccountNav";
import {
  accountKeys,
  atLeast,
  createInvite,
  grantable,
  inviteLink,
  listInvites,
  listMembers,
  removeMember,
  revokeInvite,
  updateMember,
  type MemberRead,
  type Role,
} from "./api";
import { Secret } from "./Secret";
import "./account.css";

const INVITE_FIELDS = ["email", "role"] as const;

function MemberItem({ member, canManage, ownRole, self }: { member: MemberRead; canManage: boolean; ownRole: Role; self: boolean }) {
  const queryClient = useQueryClient();
  const [role, setRole] = useState<Role>(member.role);
  const refresh = () => queryClient.invalidateQueries({ queryKey: accountKeys.members });
  const change = useMutation({ mutationFn: (next: Role) => updateMember(member.id, next), onSuccess: refresh });
  const remove = useMutation({ mutationFn: () => removeMember(member.id), onSuccess: refresh });
  const who = member.name ?? member.email;
  const errors = formErrors(change.error ?? remove.error, ["role"]);
  return (
    <li className="card">
      <h3>{who}</h3>
      <p>
        {member.email} · {member.role}
        {self ? " (you)" : ""}
      </p>
      <FormError errors={{ ...errors, fields: {} }} />
      {canManage ? (
        <form
          className="row-actions"
          aria-label={`Change the role of ${who}`}
          onSubmit={(event) => {
            event.preventDefault();
            change.mutate(role);
          }}
        >
          <SelectField
            label={`Role of ${who}`}
            name="role"
            value={role}
            onChange={(e) => {
              setRole(e.target.value as Role);
            }}
            error={errors.fields.role}
          >
            {grantable(ownRole).map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </SelectField>
          <button type="submit" disabled={change.isPending || role === member.role}>
            Change role
          </button>
        </form>
      ) : null}
      {canManage || self ? (
        <button
          type="button"
          disabled={remove.isPending}
          onClick={() => {
            remove.mutate();
          }}
        >
          {self ? "Leave the organization" : `Remove ${who}`}
        </button>
      ) : null}
    </li>
  );
}

/** Members (everyone sees them; admins change roles and remove) and invites (admins). */
export default function Members() {
  const session = useSession();
  const queryClient = useQueryClient();
  const admin = session ? atLeast(session.role, "admin") : false;
  // People join and leave from elsewhere (an invite accepted, another admin): ask again on every visit.
  const members = useQuery({ queryKey: accountKeys.members, queryFn: listMembers, staleTime: 0 });
  const invites = useQuery({ queryKey: accountKeys.invites, queryFn: listInvites, enabled: admin, staleTime: 0 });
  const [form, setForm] = useState<{ email: string; role: Role }>({ email: "", role: "member" });
  const [link, setLink] = useState<{ email: string; url: string } | null>(null);
  const invite = useMutation({
    mutationFn: createInvite,
    onSuccess: async (created) => {
      setLink({ email: created.email, url: inviteLink(created.token) });
      setForm({ email: "", role: "member" });
      await queryClient.invalidateQueries({ queryKey: accountKeys.invites });
    },
  });
  const revoke = useMutation({
    mutationFn: revokeInvite,
    onSuccess: () => queryClient.invalidateQueries({ queryKey: accountKeys.invites }),
  });
  const errors = formErrors(invite.error, INVITE_FIELDS);
  if (!session) return null;

  function submit(event: SyntheticEvent<HTMLFormElement>) {
    event.preventDefault();
    setLink(null);
    invite.mutate(form);
  }

  return (
    <div className="account">
      <h1>Members</h1>
      <AccountNav />
      <div className="columns">
        <section aria-labelledby="members-title">
          <h2 id="members-title">People in {session.organization.name}</h2>
          <ListState
            label="members"
            isPending={members.isPending}
            error={members.error}
            items={members.data?.items}
            onRetry={() => {
              void members.refetch();
            }}
            empty={<p>No members.</p>}
          >
            {(items) => (
              <ul className="cards" aria-label="Members">
                {items.map((member) => (
                  <MemberItem
                    key={member.id}
                    member={member}
                    canManage={admin && member.user_id !== session.user.id}
                    ownRole={session.role}
                    self={member.user_id === session.user.id}
                  />
                ))}
              </ul>
            )}
          </ListState>
        </section>
        {admin ? (
          <section aria-labelledby="invites-title">
            <h2 id="invites-title">Invite someone</h2>
            {link ? <Secret label={`The invite link for ${link.email}.`} value={link.url} /> : null}
            <form onSubmit={submit} noValidate aria-labelledby="invites-title">
              <FormError errors={errors} />
              <Field
                label="Email"
                name="email"
                type="email"
                value={form.email}
                onChange={(e) => {
                  setForm((f) => ({ ...f, email: e.target.value }));
                }}
                error={errors.fields.email}
              />
              <SelectField
                label="Role"
                name="role"
                value={form.role}
                onChange={(e) => {
                  setForm((f) => ({ ...f, role: e.target.value as Role }));
                }}
                error={errors.fields.role}
              >
                {grantable(session.role).map((r) => (
                  <option key={r} value={r}>
                    {r}
                  </option>
                ))}
              </SelectField>
              <button type="submit" disabled={invite.isPending}>
                {invite.isPending ? "Inviting…" : "Send invite"}
              </button>
            </form>
            <h2 id="pending-title">Invites</h2>
            {revoke.error ? <FormError errors={formErrors(revoke.error, [])} /> : null}
            <ListState
              label="invites"
              isPending={invites.isPending}
              error={invites.error}
              items={invites.data?.items}
              onRetry={() => {
                void invites.refetch();
              }}
              empty={<p>No invites yet.</p>}
            >
              {(items) => (
                <ul className="cards" aria-labelledby="pending-title">
                  {items.map((item) => (
                    <li key={item.id} className="card">
                      <p>
                        {item.email} · {item.role} · {item.status}
                      </p>
                      {item.status === "pending" ? (
                        <button
                          type="button"
                          disabled={revoke.isPending}
                          onClick={() => {
                            revoke.mutate(item.id);
                          }}
                        >
                          Revoke the invite for {item.email}
                        </button>
                      ) : null}
                    </li>
                  ))}
                </ul>
              )}
            </ListState>
          </section>
        ) : null}
      </div>
    </div>
  );
}
