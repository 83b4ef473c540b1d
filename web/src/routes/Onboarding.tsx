import { useQuery } from "@tanstack/react-query";
import { Link, useSearchParams } from "react-router";
import { toProblem } from "../api/problem";
import { getReadiness, keys, listBrands } from "../api/queries";
import { emailChecklist } from "./checklist";

/** What is left before the first email campaign can launch, for one brand (the first by default). */
export default function Onboarding() {
  const [params] = useSearchParams();
  const brands = useQuery({ queryKey: keys.brands, queryFn: listBrands });
  const items = brands.data?.items ?? [];
  const brand = items.find((b) => b.id === params.get("brand")) ?? items[0] ?? null;
  const readiness = useQuery({
    queryKey: keys.readiness(brand?.id ?? ""),
    queryFn: () => getReadiness(brand?.id ?? ""),
    enabled: brand !== null,
  });
  const checklist = emailChecklist(brand?.id ?? null, readiness.data);
  const done = checklist.filter((item) => item.done).length;
  const loading = brands.isPending || (brand !== null && readiness.isPending);
  const error = brands.error ?? readiness.error;

  return (
    <section aria-labelledby="onboarding-title">
      <h1 id="onboarding-title">Get ready to send</h1>
      {brand ? <p>Brand: {brand.name}</p> : null}
      {loading ? (
        <p role="status">Loading your checklist…</p>
      ) : error ? (
        <div role="alert" className="list-state list-state--error">
          <p>Could not load the checklist: {toProblem(error).detail}</p>
          <button type="button" onClick={() => { void brands.refetch(); void readiness.refetch(); }}>
            Try again
          </button>
        </div>
      ) : (
        <>
          <p id="checklist-progress">
            {done} of {checklist.length} steps done
            {readiness.data?.channels.email?.ready ? " — email campaigns can launch." : "."}
          </p>
          <ol className="checklist" aria-label="Onboarding checklist" aria-describedby="checklist-progress">
            {checklist.map((item) => (
              <li key={item.id} data-step={item.id} className={item.done ? "checklist__item--done" : undefined}>
                <span className="checklist__mark" aria-hidden="true">
                  {item.done ? "✓" : "○"}
                </span>
                {item.done ? (
                  <span>
                    {item.label} <span className="visually-hidden">(done)</span>
                  </span>
                ) : (
                  <Link to={item.to}>
                    {item.label} <span className="visually-hidden">(to do)</span>
                  </Link>
                )}
              </li>
            ))}
          </ol>
        </>
      )}
    </section>
  );
}
