import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type SyntheticEvent } from "react";
import { Link } from "react-router";
import { formErrors } from "../api/problem";
import { createBrand, keys, listBrands, type BrandCreate } from "../api/queries";
import { Field } from "../components/Field";
import { FormError } from "../components/FormError";
import { ListState } from "../components/ListState";

const FIELDS = ["name", "website", "postal_address", "opt_out_email"] as const;
type Form = Record<(typeof FIELDS)[number], string>;
const EMPTY: Form = { name: "", website: "", postal_address: "", opt_out_email: "" };

/** Empty optional fields are left out rather than sent as "". */
function body(form: Form): BrandCreate {
  const brand: BrandCreate = { name: form.name };
  if (form.website.trim()) brand.website = form.website.trim();
  if (form.postal_address.trim()) brand.postal_address = form.postal_address.trim();
  if (form.opt_out_email.trim()) brand.opt_out_email = form.opt_out_email.trim();
  return brand;
}

export default function Brands() {
  const queryClient = useQueryClient();
  const brands = useQuery({ queryKey: keys.brands, queryFn: listBrands });
  const [form, setForm] = useState<Form>(EMPTY);
  const [created, setCreated] = useState<{ id: string; name: string } | null>(null);
  const mutation = useMutation({
    mutationFn: createBrand,
    onSuccess: async (brand) => {
      setForm(EMPTY);
      setCreated({ id: brand.id, name: brand.name });
      await queryClient.invalidateQueries({ queryKey: keys.brands });
    },
  });
  const errors = formErrors(mutation.error, FIELDS);
  const set = (name: keyof Form) => (event: { target: { value: string } }) => {
    setForm((previous) => ({ ...previous, [name]: event.target.value }));
  };

  function submit(event: SyntheticEvent<HTMLFormElement>) {
    event.preventDefault();
    setCreated(null);
    mutation.mutate(body(form));
  }

  return (
    <div className="columns">
      <section aria-labelledby="brands-title">
        <h1 id="brands-title">Brands</h1>
        <ListState
          label="brands"
          isPending={brands.isPending}
          error={brands.error}
          items={brands.data?.items}
          onRetry={() => { void brands.refetch(); }}
          empty={<p>No brands yet. Create the first one: who is speaking in your messages.</p>}
        >
          {(items) => (
            <ul className="cards" aria-label="Brands">
              {items.map((brand) => (
                <li key={brand.id} className="card">
                  <h2>{brand.name}</h2>
                  {brand.website ? <p>{brand.website}</p> : null}
                  <p className="card__links">
                    <Link to={`/brands/${brand.id}/senders`}>Senders of {brand.name}</Link>
                    <Link to={`/?brand=${brand.id}`}>Checklist for {brand.name}</Link>
                  </p>
                </li>
              ))}
            </ul>
          )}
        </ListState>
      </section>
      <section aria-labelledby="new-brand-title">
        <h2 id="new-brand-title">Create a brand</h2>
        <form onSubmit={submit} noValidate aria-label="Create a brand">
          {created ? (
            <p role="status" className="notice">
              Brand {created.name} created. <Link to={`/brands/${created.id}/senders`}>Add its email sender</Link>
            </p>
          ) : null}
          <FormError errors={errors} />
          <Field label="Brand name" name="name" value={form.name} onChange={set("name")} error={errors.fields.name} />
          <Field
            label="Website"
            name="website"
            type="url"
            placeholder="https://"
            value={form.website}
            onChange={set("website")}
            error={errors.fields.website}
          />
          <Field
            label="Postal address"
            name="postal_address"
            hint="Printed in every email (CAN-SPAM)."
            autoComplete="street-address"
            value={form.postal_address}
            onChange={set("postal_address")}
            error={errors.fields.postal_address}
          />
          <Field
            label="Email opt-out wording"
            name="opt_out_email"
            hint="Shown before the unsubscribe link, e.g. “Prefer not to hear from us? Unsubscribe”."
            value={form.opt_out_email}
            onChange={set("opt_out_email")}
            error={errors.fields.opt_out_email}
          />
          <button type="submit" disabled={mutation.isPending}>
            {mutation.isPending ? "Creating…" : "Create brand"}
          </button>
        </form>
      </section>
    </div>
  );
}
