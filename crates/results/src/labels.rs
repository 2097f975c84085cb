//! The label sets of TAU Urban Acoustic Scenes 2022 Mobile, in the order every DCASE table uses,
//! and the device list of a dataset, which may name devices beyond the development set's nine
//! (the DCASE2025 evaluation set has `d`, `s7`–`s10` and `unknown`).

use std::cmp::Ordering;

/// The 10 scene classes, in table order.
pub const CLASSES: [&str; 10] = [
    "airport",
    "bus",
    "metro",
    "metro_station",
    "park",
    "public_square",
    "shopping_mall",
    "street_pedestrian",
    "street_traffic",
    "tram",
];

/// The development set's recording devices, in table order: a, b, c real; s1–s6 simulated
/// (s4–s6 only in the test split). Every [`DeviceList`] starts with them, so each has the same
/// index in every dataset ([`known_device_index`]).
pub const KNOWN_DEVICES: [&str; 9] = ["a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6"];

/// The devices a development-set training split has (DCASE "seen" columns); every other id,
/// s4–s6 and the evaluation set's new ones included, is unseen.
pub const SEEN_DEVICES: [&str; 6] = ["a", "b", "c", "s1", "s2", "s3"];
/// The development set's devices that appear only in its test split (the reports' "unseen").
pub const UNSEEN_DEVICES: [&str; 3] = ["s4", "s5", "s6"];

pub fn class_index(name: &str) -> Option<usize> {
    CLASSES.iter().position(|c| *c == name)
}

/// The index of a development-set device, the same in every dataset's [`DeviceList`].
pub fn known_device_index(name: &str) -> Option<usize> {
    KNOWN_DEVICES.iter().position(|d| *d == name)
}

/// Whether `id` has the form of a device id (`source_label` in meta.csv): non-empty ASCII
/// letters, digits, `_` and `-`.
pub fn is_device_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Table order of device ids: the known devices first, in their canonical order, then the others
/// by name with a trailing number compared as a number (`d`, `s7`, …, `s10`, `unknown`).
pub fn device_order(a: &str, b: &str) -> Ordering {
    let key = |d: &str| {
        let known = known_device_index(d).unwrap_or(KNOWN_DEVICES.len());
        let digits = d.len() - d.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (stem, number) = d.split_at(d.len() - digits);
        // Leading zeros or overlong numbers fall back to plain name order through the last key.
        let number: Option<u128> = number.parse().ok();
        (known, stem.to_string(), number, d.to_string())
    };
    key(a).cmp(&key(b))
}

/// The recording devices of a dataset: the known devices first (always all nine, so their
/// indices never depend on the data), then every other id the data names, in [`device_order`].
/// Clips and feature sets hold indices into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceList {
    names: Vec<String>,
}

impl DeviceList {
    /// The development set's nine devices.
    pub fn known() -> DeviceList {
        DeviceList::with(std::iter::empty::<&str>())
    }

    /// The known devices followed by the other ids of `ids` (duplicates ignored).
    pub fn with<S: AsRef<str>>(ids: impl IntoIterator<Item = S>) -> DeviceList {
        let mut others: Vec<String> = ids
            .into_iter()
            .map(|s| s.as_ref().to_string())
            .filter(|d| known_device_index(d).is_none())
            .collect();
        others.sort_by(|a, b| device_order(a, b));
        others.dedup();
        let names = KNOWN_DEVICES
            .iter()
            .map(|d| d.to_string())
            .chain(others)
            .collect();
        DeviceList { names }
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|d| d == name)
    }

    /// The id at `index` (panics when out of range: indices come from this list).
    pub fn name(&self, index: usize) -> &str {
        &self.names[index]
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_devices_keep_their_indices_and_others_follow_in_table_order() {
        let list = DeviceList::with(["unknown", "s10", "a", "s7", "d", "s8", "s7"]);
        assert_eq!(&list.names()[..9], KNOWN_DEVICES.map(String::from));
        assert_eq!(&list.names()[9..], ["d", "s7", "s8", "s10", "unknown"]);
        assert_eq!(list.index("s4"), Some(6));
        assert_eq!(list.index("s10"), Some(12));
        assert_eq!(DeviceList::known().len(), 9);
        assert!(is_device_id("unknown") && is_device_id("s7") && !is_device_id("a b"));
    }
}
