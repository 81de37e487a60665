//! The roles a client certificate carries: `admin` ⊇ `hr` ⊇ `read-only`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a caller may do. `admin` ⊇ `hr` ⊇ `read-only`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Everything, including node administration and certificates.
    Admin,
    /// Staff records, credentials, consents and received passports.
    Hr,
    /// Read status, rosters, received passports and the audit log.
    ReadOnly,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 3] = [Role::Admin, Role::Hr, Role::ReadOnly];

    /// The role's name as used in certificates, the CLI and the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Hr => "hr",
            Role::ReadOnly => "read-only",
        }
    }

    const fn rank(self) -> u8 {
        match self {
            Role::Admin => 2,
            Role::Hr => 1,
            Role::ReadOnly => 0,
        }
    }

    /// Whether this role includes everything `required` may do.
    pub const fn allows(self, required: Role) -> bool {
        self.rank() >= required.rank()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of `admin`, `hr`, `read-only`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: expected admin, hr or read-only")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            assert_eq!(serde_json::to_value(role).unwrap(), serde_json::json!(role.as_str()));
        }
        assert!("Admin".parse::<Role>().is_err());
        assert!("readonly".parse::<Role>().is_err());
    }

    #[test]
    fn role_order() {
        use Role::*;
        let allowed = |have: Role, need: Role| have.allows(need);
        assert!(allowed(Admin, Admin) && allowed(Admin, Hr) && allowed(Admin, ReadOnly));
        assert!(!allowed(Hr, Admin) && allowed(Hr, Hr) && allowed(Hr, ReadOnly));
        assert!(!allowed(ReadOnly, Admin) && !allowed(ReadOnly, Hr) && allowed(ReadOnly, ReadOnly));
    }
}
