//! The testnet's trusts and agreements: who is in what, under which
//! stewards and thresholds. Pure data, shared by local and docker mode.

/// One trust (or partner) that runs a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trust {
    /// Organisation id.
    pub org: &'static str,
    /// Short name for the story.
    pub short: &'static str,
    /// Its full name, as the stewards record it.
    pub name: &'static str,
    /// Last octet of its address on the docker network.
    pub octet: u8,
    /// First assignment number of its synthetic staff.
    pub first_assignment: u32,
}

/// The nodes of the testnet.
pub const TRUSTS: &[Trust] = &[
    Trust {
        org: "RJZ",
        short: "King's",
        name: "King's College Hospital NHS FT",
        octet: 11,
        first_assignment: 11_000_000,
    },
    Trust {
        org: "RJ1",
        short: "Guy's & St Thomas'",
        name: "Guy's and St Thomas' NHS FT",
        octet: 12,
        first_assignment: 12_000_000,
    },
    Trust {
        org: "RV5",
        short: "SLaM",
        name: "South London and Maudsley NHS FT",
        octet: 13,
        first_assignment: 13_000_000,
    },
    Trust {
        org: "RJ2",
        short: "Lewisham & Greenwich",
        name: "Lewisham and Greenwich NHS Trust",
        octet: 14,
        first_assignment: 14_000_000,
    },
    Trust { org: "RPG", short: "Oxleas", name: "Oxleas NHS FT", octet: 15, first_assignment: 15_000_000 },
    Trust {
        org: HOSPICE,
        short: "St Christopher's Hospice",
        name: "St Christopher's Hospice (fictional registration)",
        octet: 16,
        first_assignment: 16_000_000,
    },
    Trust {
        org: OUTSIDER,
        short: "Outsider (RAX)",
        name: "Kingston Hospital NHS FT (in no agreement here)",
        octet: 17,
        first_assignment: 17_000_000,
    },
];

/// The non-NHS partner: a hospice, by its (fictional) charity number.
pub const HOSPICE: &str = "ext:charity:1012345";
/// The node in no agreement.
pub const OUTSIDER: &str = "RAX";

/// One agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreement {
    /// Its id.
    pub id: &'static str,
    /// Its title.
    pub title: &'static str,
    /// Who stewards it (for the story).
    pub steward_body: &'static str,
    /// How many stewards.
    pub stewards: usize,
    /// How many must sign each change.
    pub threshold: usize,
    /// Moves covered (admin CLI syntax).
    pub moves: &'static str,
    /// Claims accepted (admin CLI syntax).
    pub accepts: &'static str,
    /// Members, by org.
    pub members: &'static [&'static str],
}

/// The three agreements.
pub const AGREEMENTS: &[Agreement] = &[
    Agreement {
        id: "london-mou",
        title: "London staff-movement MOU",
        steward_body: "London ICS people programme",
        stewards: 3,
        threshold: 2,
        moves: "rotation,honorary-contract,secondment,emergency-deployment",
        accepts: "all",
        members: &["RJZ", "RJ1", "RV5", "RJ2", "RPG"],
    },
    Agreement {
        id: "kings-health-partners",
        title: "King's Health Partners passport",
        steward_body: "KHP workforce board",
        stewards: 2,
        threshold: 2,
        moves: "rotation,honorary-contract",
        accepts: "all",
        members: &["RJZ", "RJ1", "RV5"],
    },
    Agreement {
        id: "one-bromley",
        title: "One Bromley workforce agreement",
        steward_body: "One Bromley partnership",
        stewards: 4,
        threshold: 3,
        moves: "secondment,honorary-contract",
        accepts: "identity,right-to-work,dbs,occupational-health,immunisation:hepatitis-b,immunisation:mmr,\
                  immunisation:varicella,immunisation:tb,training:fire-safety,training:infection-prevention-control,\
                  training:information-governance,training:moving-handling,training:safeguarding-adults,\
                  training:safeguarding-children,training:resuscitation",
        members: &["RJZ", "RPG", HOSPICE],
    },
];

/// The trust `org`.
pub fn trust(org: &str) -> Option<&'static Trust> {
    TRUSTS.iter().find(|t| t.org == org)
}

/// The agreement `id`.
pub fn agreement(id: &str) -> Option<&'static Agreement> {
    AGREEMENTS.iter().find(|a| a.id == id)
}

/// The agreements `org` has signed.
pub fn agreements_of(org: &str) -> Vec<&'static Agreement> {
    AGREEMENTS.iter().filter(|a| a.members.contains(&org)).collect()
}

/// The orgs that share at least one agreement with `org`.
pub fn partners_of(org: &str) -> Vec<&'static str> {
    let mut out: Vec<&str> = agreements_of(org).iter().flat_map(|a| a.members.iter().copied()).collect();
    out.sort_unstable();
    out.dedup();
    out.retain(|o| *o != org);
    out
}

/// A directory-safe name for an org id (`ext:charity:1` -> `ext-charity-1`).
pub fn dir_name(org: &str) -> String {
    org.replace(':', "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_member_is_a_trust_and_every_id_parses() {
        for t in TRUSTS {
            assert!(t.org.parse::<staffpass_protocol::OrgId>().is_ok(), "{}", t.org);
        }
        for a in AGREEMENTS {
            assert!(a.id.parse::<staffpass_protocol::AgreementId>().is_ok(), "{}", a.id);
            assert!((1..=a.stewards).contains(&a.threshold));
            for m in a.members {
                assert!(trust(m).is_some(), "{m}");
            }
        }
    }

    #[test]
    fn the_outsider_is_in_no_agreement_and_overlaps_are_as_designed() {
        assert!(agreements_of(OUTSIDER).is_empty());
        assert_eq!(partners_of(OUTSIDER), Vec::<&str>::new());
        assert_eq!(agreements_of("RJZ").len(), 3);
        assert_eq!(partners_of(HOSPICE), vec!["RJZ", "RPG"]);
        assert_eq!(partners_of("RJ2"), vec!["RJ1", "RJZ", "RPG", "RV5"]);
        // Distinct steward set sizes and thresholds.
        let shapes: std::collections::HashSet<(usize, usize)> =
            AGREEMENTS.iter().map(|a| (a.stewards, a.threshold)).collect();
        assert_eq!(shapes.len(), AGREEMENTS.len());
    }

    #[test]
    fn accepted_claims_parse() {
        for a in AGREEMENTS.iter().filter(|a| a.accepts != "all") {
            for c in a.accepts.split(',') {
                assert!(c.trim().parse::<staffpass_protocol::ClaimKind>().is_ok(), "{c}");
            }
        }
    }
}
