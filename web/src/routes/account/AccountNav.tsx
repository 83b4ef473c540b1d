import { NavLink } from "react-router";

/** The account area's own navigation. */
export function AccountNav() {
  return (
    <nav aria-label="Account" className="account-nav">
      <ul>
        <li>
          <NavLink to="/account" end>
            Profile
          </NavLink>
        </li>
        <li>
          <NavLink to="/account/members">Members</NavLink>
        </li>
        <li>
          <NavLink to="/account/api-keys">API keys</NavLink>
        </li>
        <li>
          <NavLink to="/account/providers">Provider credentials</NavLink>
        </li>
      </ul>
    </nav>
  );
}
