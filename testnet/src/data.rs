//! Synthetic staff records: realistic in shape, fictitious in content.
//!
//! Names come only from the fixed lists below (surnames that are plainly
//! made up), NI numbers from the `ZZ` prefix, which HMRC never allocates,
//! and every date is placed relative to `today` so that some training is in
//! date, some is close to its refresher date and some has expired. The
//! output is a pure function of `(seed, rows, today, assignment base)`, and
//! is written as the ESR-style CSV that `staffpass-node` imports (see the
//! column list at the top of `node/src/exchange/staff.rs`).

use std::fmt::Write as _;

use staffpass_protocol::Date;

/// First names (common, so no one is singled out).
pub const FIRST_NAMES: &[&str] = &[
    "Aisha", "Ben", "Chloe", "Dev", "Ella", "Femi", "Grace", "Hamza", "Isla", "Jack", "Kemi", "Liam", "Maya", "Nikhil",
    "Olu", "Priya", "Quinn", "Rosa", "Sam", "Tariq", "Uma", "Vic", "Wren", "Yusuf", "Zara",
];

/// Surnames: invented, so no combination names a real person.
pub const SURNAMES: &[&str] = &[
    "Example",
    "Sample",
    "Specimen",
    "Testwell",
    "Mockford",
    "Dummett",
    "Placeholder",
    "Fictive",
    "Madeup",
    "Notreal",
    "Synthetica",
    "Imaginary",
    "Pretendon",
    "Fakenham-Test",
    "Inventive",
];

/// The NI prefix used: `ZZ` is never allocated by HMRC.
pub const NI_PREFIX: &str = "ZZ";

/// Job roles with the regulator that registers them (if any).
const ROLES: &[(&str, Option<Reg>)] = &[
    ("Foundation Doctor", Some(Reg::Gmc)),
    ("Specialty Registrar", Some(Reg::Gmc)),
    ("Consultant", Some(Reg::Gmc)),
    ("Staff Nurse", Some(Reg::Nmc)),
    ("Ward Sister", Some(Reg::Nmc)),
    ("Mental Health Nurse", Some(Reg::Nmc)),
    ("Physiotherapist", Some(Reg::Hcpc)),
    ("Paramedic", Some(Reg::Hcpc)),
    ("Healthcare Assistant", None),
    ("Porter", None),
];

#[derive(Clone, Copy)]
enum Reg {
    Gmc,
    Nmc,
    Hcpc,
}

/// CSTF subjects with their usual refresher period in months.
pub const CSTF: &[(&str, u16)] = &[
    ("conflict-resolution", 36),
    ("equality-diversity-human-rights", 36),
    ("fire-safety", 24),
    ("health-safety-welfare", 36),
    ("infection-prevention-control", 12),
    ("information-governance", 12),
    ("moving-handling", 24),
    ("preventing-radicalisation", 36),
    ("resuscitation", 12),
    ("safeguarding-adults", 36),
    ("safeguarding-children", 36),
];

const VACCINES: &[&str] = &["hepatitis-b", "mmr", "varicella", "tb"];

/// A small deterministic generator (splitmix64): the output must not change
/// when a dependency's RNG does.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5afe_5eed_0f57_aff5)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The seed: the same seed gives the same file.
    pub seed: u64,
    /// How many people.
    pub rows: usize,
    /// The day the export is made: every date lies on or before it.
    pub today: Date,
    /// First assignment number (8 digits; trusts use different ranges).
    pub first_assignment: u32,
}

/// The CSV header: every column the generator fills.
pub fn header() -> String {
    let mut h = String::from(
        "assignment_number,full_name,ni_number,date_of_birth,job_role,assignment_start,identity_verified,\
         registration_body,registration_number,right_to_work,right_to_work_checked,right_to_work_expires,\
         dbs_level,dbs_certificate,dbs_issued,dbs_update_service,references_checked,references_count,\
         oh_cleared,oh_epp",
    );
    for v in VACCINES {
        let _ = write!(h, ",immunisation:{v}/completed");
    }
    for (s, _) in CSTF {
        let _ = write!(h, ",training:{s}/completed,training:{s}/refresher_months");
    }
    h
}

/// One generated person, as the CSV cells in [`header`] order.
fn row(rng: &mut Rng, index: usize, spec: &Spec) -> Vec<String> {
    let today = spec.today;
    let days_ago =
        |rng: &mut Rng, min: i32, max: i32| today.plus_days(-(min + rng.below((max - min).max(1) as u64) as i32));
    let first = rng.pick(FIRST_NAMES);
    let last = rng.pick(SURNAMES);
    // ZZ + six digits unique within the file (index) mixed with the seed, suffix A-D.
    let digits = (spec.seed.wrapping_mul(7919).wrapping_add(index as u64 * 104_729)) % 1_000_000;
    let ni = format!("{NI_PREFIX}{digits:06}{}", ['A', 'B', 'C', 'D'][index % 4]);
    let dob = days_ago(rng, 22 * 365, 64 * 365);
    let &(role, reg) = rng.pick(ROLES);
    let start = days_ago(rng, 30, 8 * 365);
    let assignment =
        format!("{:08}-{}", spec.first_assignment.wrapping_add(index as u32) % 100_000_000, 1 + rng.below(3));
    let (reg_body, reg_number) = match reg {
        Some(Reg::Gmc) => ("GMC".to_string(), format!("{}", 7_000_000 + rng.below(999_999))),
        Some(Reg::Nmc) => ("NMC".to_string(), format!("{:02}Y{:04}E", rng.below(99), rng.below(9999))),
        Some(Reg::Hcpc) => ("HCPC".to_string(), format!("PA{:06}", rng.below(999_999))),
        None => (String::new(), String::new()),
    };
    let (rtw, rtw_expires) = match rng.below(10) {
        0..=6 => ("british-citizen", String::new()),
        7 | 8 => ("settled-status", String::new()),
        _ => ("skilled-worker-visa", today.plus_days(60 + rng.below(900) as i32).to_string()),
    };
    let dbs_issued = days_ago(rng, 10, 5 * 365);
    let clinical = reg.is_some() || role == "Healthcare Assistant";
    let mut cells = vec![
        assignment,
        format!("{first} {last}"),
        ni,
        dob.to_string(),
        role.to_string(),
        start.to_string(),
        start.to_string(),
        reg_body,
        reg_number,
        rtw.to_string(),
        start.to_string(),
        rtw_expires,
        if clinical { "enhanced-barred" } else { "enhanced" }.to_string(),
        format!("{:012}", rng.next_u64() % 1_000_000_000_000),
        dbs_issued.to_string(),
        if rng.chance(70) { "yes" } else { "no" }.to_string(),
        start.to_string(),
        "2".to_string(),
        start.to_string(),
        if clinical && rng.chance(50) { "yes" } else { "no" }.to_string(),
    ];
    for _ in VACCINES {
        cells.push(if clinical || rng.chance(30) { days_ago(rng, 200, 20 * 365).to_string() } else { String::new() });
    }
    for &(_, months) in CSTF {
        // Completed up to 1.3 refresher periods ago: about a quarter expired,
        // some within two months of their refresher date.
        let period_days = i32::from(months) * 30;
        let done = days_ago(rng, 1, period_days * 13 / 10);
        cells.push(done.to_string());
        cells.push(months.to_string());
    }
    cells
}

/// The CSV file for `spec`.
pub fn generate(spec: &Spec) -> String {
    let mut rng = Rng::new(spec.seed);
    let mut out = header();
    out.push('\n');
    for i in 0..spec.rows {
        out.push_str(&row(&mut rng, i, spec).join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(seed: u64, rows: usize) -> Spec {
        Spec { seed, rows, today: "2026-11-23".parse().unwrap(), first_assignment: 10_000_000 }
    }

    fn rows(csv: &str) -> Vec<Vec<String>> {
        csv.lines().skip(1).map(|l| l.split(',').map(str::to_string).collect()).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_file_and_another_seed_another() {
        assert_eq!(generate(&spec(7, 50)), generate(&spec(7, 50)));
        assert_ne!(generate(&spec(7, 50)), generate(&spec(8, 50)));
        // A longer file starts with the shorter one.
        assert!(generate(&spec(7, 80)).starts_with(&generate(&spec(7, 50))));
    }

    #[test]
    fn ni_numbers_are_valid_in_format_unique_and_from_the_unallocated_prefix() {
        let csv = generate(&spec(42, 500));
        let mut seen = std::collections::HashSet::new();
        for r in rows(&csv) {
            let ni = &r[2];
            assert!(ni.starts_with(NI_PREFIX), "{ni}");
            assert!(ni.parse::<staffpass_protocol::claims::NiNumber>().is_ok(), "{ni} is a valid NI format");
            assert!(seen.insert(ni.clone()), "NI numbers are unique: {ni}");
        }
    }

    #[test]
    fn every_name_comes_from_the_fixed_lists() {
        for r in rows(&generate(&spec(3, 500))) {
            let (first, last) = r[1].split_once(' ').unwrap();
            assert!(FIRST_NAMES.contains(&first), "{first}");
            assert!(SURNAMES.contains(&last), "{last}");
        }
    }

    #[test]
    fn the_file_imports_cleanly_with_the_nodes_own_parser() {
        let s = spec(11, 300);
        let csv = generate(&s);
        let (good, errors) = staffpass_node::exchange::staff::parse_csv(csv.as_bytes(), s.today).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(good.len(), 300);
        // Every person has the 11 CSTF subjects, identity and assignment.
        assert!(good.iter().all(|(_, p)| p.claims.len() >= 2 + CSTF.len()));
    }

    #[test]
    fn some_training_is_in_date_some_expiring_and_some_expired() {
        use staffpass_protocol::claims::Validity;
        let s = spec(5, 100);
        let (good, _) = staffpass_node::exchange::staff::parse_csv(generate(&s).as_bytes(), s.today).unwrap();
        let (mut in_date, mut expiring, mut expired) = (0, 0, 0);
        for (_, p) in &good {
            for c in &p.claims {
                if c.kind().to_string().starts_with("training:") {
                    match c.validity(s.today) {
                        Validity::InDate { days_left, .. } if days_left <= 60 => expiring += 1,
                        Validity::InDate { .. } => in_date += 1,
                        Validity::Expired { .. } => expired += 1,
                        Validity::NoExpiry => {}
                    }
                }
            }
        }
        let total = (in_date + expiring + expired) as f64;
        assert!(in_date as f64 > total * 0.5, "{in_date}/{total}");
        assert!(expired as f64 > total * 0.1, "{expired}/{total}");
        assert!(expiring > 0);
    }
}
