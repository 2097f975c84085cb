//! Stage instances: a recipe stage runs once per training split it is expanded over
//! (`for_each`) and once per training seed of the profile (`repeats`). An instance's id is the
//! stage's id with `@<split>` and, from the second seed on, `#<n>`: the first seed's run keeps
//! the plain id (and so its seed and cache entry), so adding repeats retrains nothing.

/// Which run of a recipe stage an instance is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instance {
    /// The training split of a stage expanded per split.
    pub split: Option<String>,
    /// The training seed, from 1.
    pub seed: usize,
}

impl Instance {
    pub const SINGLE: Instance = Instance {
        split: None,
        seed: 1,
    };

    /// The instance's id from its stage's.
    pub fn id(&self, stage: &str) -> String {
        let mut id = stage.to_string();
        if let Some(s) = &self.split {
            id += "@";
            id += s;
        }
        if self.seed > 1 {
            id += &format!("#{}", self.seed);
        }
        id
    }

    /// What its label adds to the stage's.
    pub fn label(&self, stage_label: &str, seeds: usize) -> String {
        let mut label = stage_label.to_string();
        if let Some(s) = &self.split {
            label += &format!(" ({s})");
        }
        if seeds > 1 {
            label += &format!(" [seed {}/{seeds}]", self.seed);
        }
        label
    }
}

/// The recipe stage and instance an id names (stage ids hold neither `@` nor `#`).
pub fn parse(id: &str) -> (&str, Instance) {
    let (rest, seed) = match id.rsplit_once('#') {
        Some((rest, n)) => match n.parse::<usize>() {
            Ok(n) if n > 1 => (rest, n),
            _ => (id, 1),
        },
        None => (id, 1),
    };
    match rest.split_once('@') {
        Some((stage, split)) => (
            stage,
            Instance {
                split: Some(split.to_string()),
                seed,
            },
        ),
        None => (rest, Instance { split: None, seed }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for (split, seed, id) in [
            (None, 1, "s"),
            (None, 3, "s#3"),
            (Some("split5"), 1, "s@split5"),
            (Some("split25"), 2, "s@split25#2"),
        ] {
            let i = Instance {
                split: split.map(str::to_string),
                seed,
            };
            assert_eq!(i.id("s"), id);
            assert_eq!(parse(id), ("s", i));
        }
        // A slash-suffixed device model id is not an instance suffix.
        assert_eq!(parse("ft/a").0, "ft/a");
    }
}
