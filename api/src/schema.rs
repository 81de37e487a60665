//! The OpenAPI schemas of the ids, keys and codes that the API's types hold
//! as strings: each says what the node's parser accepts (a pattern, or the
//! list of values), so that a client, or a tool generating requests from
//! the document, knows a well-formed id from one the node refuses with 400.
//!
//! These types exist only to be named in `#[schema(value_type = ...)]` and
//! in route parameters; their patterns are checked against the protocol's
//! parsers by this module's tests.

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

macro_rules! string_schema {
    ($($(#[$doc:meta])* $name:ident { description: $desc:expr, pattern: $pattern:expr, example: $example:expr $(,)? })*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl $name {
            /// The pattern of every value (a regular expression, anchored).
            pub const PATTERN: &'static str = $pattern;
            /// An example value.
            pub const EXAMPLE: &'static str = $example;
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some($desc))
                    .pattern(Some(Self::PATTERN))
                    .examples([Self::EXAMPLE])
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    )*};
}

string_schema! {
    /// A staff reference (`staffpass_protocol::StaffRef`).
    StaffRef {
        description: "A staff member's pseudonymous reference: 8 to 64 letters, digits, '-' or '_'",
        pattern: "^[A-Za-z0-9_-]{8,64}$",
        example: "st-1f3a0c5e9b7d4a2f8c6e1b3d5a7f9c0e",
    }
    /// An agreement id (`staffpass_protocol::AgreementId`).
    AgreementId {
        description: "An agreement id: 3 to 63 lower-case letters, digits and hyphens, starting with a letter, not ending with a hyphen",
        pattern: "^[a-z][a-z0-9-]{1,61}[a-z0-9]$",
        example: "london-mou",
    }
    /// An organisation id (`staffpass_protocol::OrgId`): an ODS code (3 to 6
    /// capital letters or digits, at least one letter) or `ext:register:number`.
    OrgId {
        description: "An organisation: an NHS ODS code (3 to 6 capital letters or digits, at least one letter) or ext:<register>:<number>",
        pattern: "^(?:[A-Z][A-Z0-9]{2,5}|[0-9][A-Z][A-Z0-9]{1,4}|[0-9]{2}[A-Z][A-Z0-9]{0,3}|[0-9]{3}[A-Z][A-Z0-9]{0,2}|[0-9]{4}[A-Z][A-Z0-9]?|[0-9]{5}[A-Z]|ext:[a-z][a-z0-9-]{1,31}:[A-Z0-9-]{1,32})$",
        example: "RJZ",
    }
    /// A consent id (`staffpass_protocol::ConsentId`).
    ConsentId {
        description: "A consent id: consent- and 32 lower-case hex digits",
        pattern: "^consent-[0-9a-f]{32}$",
        example: "consent-0123456789abcdef0123456789abcdef",
    }
    /// A credential id (`staffpass_protocol::CredentialId`).
    CredentialId {
        description: "A credential id: cred- and 32 lower-case hex digits",
        pattern: "^cred-[0-9a-f]{32}$",
        example: "cred-0123456789abcdef0123456789abcdef",
    }
    /// A staff member's public key (`staffpass_protocol::StaffPublicKey`).
    /// The pattern is the text form; the node also refuses one that is not
    /// a valid ed25519 point (422).
    StaffPublicKey {
        description: "A staff member's ed25519 public key: staff-pk: and 64 lower-case hex digits (it must also be a valid ed25519 point)",
        pattern: "^staff-pk:[0-9a-f]{64}$",
        example: "staff-pk:3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    }
    /// An ed25519 signature (`staffpass_protocol::Signature`), hex.
    Signature {
        description: "An ed25519 signature: 128 hex digits",
        pattern: "^[0-9a-fA-F]{128}$",
        example: "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    }
    /// A SHA-256 hash (`staffpass_protocol::Hash`), hex.
    Hash {
        description: "A SHA-256 hash: 64 hex digits",
        pattern: "^[0-9a-fA-F]{64}$",
        example: "0000000000000000000000000000000000000000000000000000000000000000",
    }
}

macro_rules! enum_schema {
    ($($(#[$doc:meta])* $name:ident { description: $desc:expr, values: $values:expr $(,)? })*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let values: Vec<String> = $values;
                ObjectBuilder::new().schema_type(Type::String).description(Some($desc)).enum_values(Some(values)).into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    )*};
}

enum_schema! {
    /// A kind of staff move (`staffpass_protocol::roster::MoveKind`).
    MoveKind {
        description: "A kind of staff move",
        values: staffpass_protocol::roster::MoveKind::ALL.iter().map(ToString::to_string).collect(),
    }
    /// Why a credential is revoked (`staffpass_protocol::revocation::RevocationReason`).
    RevocationReason {
        description: "Why a credential is revoked",
        values: staffpass_protocol::revocation::RevocationReason::ALL.iter().map(ToString::to_string).collect(),
    }
    /// A kind of claim (`staffpass_protocol::claims::ClaimKind`).
    ClaimKind {
        description: "A kind of claim: a check, an immunisation or a CSTF training subject",
        values: staffpass_protocol::claims::ClaimKind::all().iter().map(ToString::to_string).collect(),
    }
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;

    use super::*;

    fn matches(pattern: &str, s: &str) -> bool {
        regex::Regex::new(pattern).unwrap().is_match(s)
    }

    /// The pattern accepts what the node reads as a JSON string (bodies and
    /// path parameters go through the same `Deserialize`), and only that.
    fn agrees<T: DeserializeOwned>(pattern: &str, samples: &[&str]) {
        for s in samples {
            let parsed = serde_json::from_value::<T>(serde_json::Value::from(*s)).is_ok();
            assert_eq!(matches(pattern, s), parsed, "{pattern} and the parser disagree on {s:?}");
        }
    }

    #[test]
    fn patterns_agree_with_the_parsers() {
        agrees::<staffpass_protocol::StaffRef>(
            StaffRef::PATTERN,
            &[
                StaffRef::EXAMPLE,
                "abcdefgh",
                "abcdefg",
                "ab_cd-EF12",
                "abc defgh",
                "0",
                "",
                &"a".repeat(64),
                &"a".repeat(65),
            ],
        );
        agrees::<staffpass_protocol::AgreementId>(
            AgreementId::PATTERN,
            &[AgreementId::EXAMPLE, "abc", "ab", "a-b", "abc-", "1bc", "Abc", "a--b", &"a".repeat(63), &"a".repeat(64)],
        );
        agrees::<staffpass_protocol::OrgId>(
            OrgId::PATTERN,
            &[
                OrgId::EXAMPLE,
                "RJ1",
                "123",
                "1A2",
                "12A",
                "123456",
                "12345A",
                "A12345",
                "ABCDEFG",
                "AB",
                "rjz",
                "0000A",
                "ext:charity:1012345",
                "ext:c:1",
                "ext:companies-house:AB-12",
                "ext:Charity:1",
                "ext:charity:",
                "ext:charity",
            ],
        );
        agrees::<staffpass_protocol::ConsentId>(
            ConsentId::PATTERN,
            &[
                ConsentId::EXAMPLE,
                "consent-0123456789ABCDEF0123456789abcdef",
                "consent-0123",
                "cred-0123456789abcdef0123456789abcdef",
            ],
        );
        agrees::<staffpass_protocol::CredentialId>(
            CredentialId::PATTERN,
            &[
                CredentialId::EXAMPLE,
                "cred-0123456789abcdef0123456789abcdeg",
                "cred-",
                "consent-0123456789abcdef0123456789abcdef",
            ],
        );
        agrees::<staffpass_protocol::StaffPublicKey>(
            StaffPublicKey::PATTERN,
            &[
                StaffPublicKey::EXAMPLE,
                "staff-pk:00",
                "issuer-pk:3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            ],
        );
        agrees::<staffpass_protocol::Signature>(Signature::PATTERN, &[Signature::EXAMPLE, "00", &"g".repeat(128)]);
        agrees::<staffpass_protocol::Hash>(Hash::PATTERN, &[Hash::EXAMPLE, &"A".repeat(64), "00", &"0".repeat(65)]);
    }
}
