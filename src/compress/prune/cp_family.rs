//! Channel groups of the CP-Mobile family (`models::cp_blocks`), from the family's width plan.
//!
//! - Stem hidden (entry 0): the first stem conv(s) and their BatchNorms, read by the second.
//! - Residual streams: the stem output and every block output that keeps its width (the block
//!   has a residual add) are one group, entries 1, 3, 5, ... of the tied blocks; a block that
//!   changes width starts a new stream. A stream holds the producing convs (stem's second conv,
//!   each block's projection) with their BatchNorms, the GRNs (CP-Mobile), and the convs that
//!   read it (the next blocks' expansions, the classifier).
//! - Each block's expansion (entry 2 + 2i): the expansion conv, the depthwise conv(s) that follow
//!   it channel by channel (SSCP-Mobile's two summed ones share their channels), all
//!   BatchNorms, and the projection that reads it.

use super::groups::{ChannelGroup, Distinct, Layout, Member, MemberKind, Part};
use crate::models::cp_blocks::{Channels, DepthwiseKind, Family, N_BLOCKS};

fn member(module: String, kind: MemberKind) -> Member {
    Member {
        module,
        kind,
        space: 0,
        part: Part::Whole,
        per_unit: 1,
    }
}

/// A conv-BN unit's conv output and BatchNorm (`<unit>.0`, `<unit>.1`).
fn produces(unit: &str) -> [Member; 2] {
    [
        member(format!("{unit}.0"), MemberKind::ConvOut),
        member(format!("{unit}.1"), MemberKind::BatchNorm),
    ]
}

fn reads(unit: &str) -> Member {
    member(format!("{unit}.0"), MemberKind::ConvIn)
}

fn group(name: String, entries: Vec<usize>, units: i64, members: Vec<Member>) -> ChannelGroup {
    ChannelGroup {
        name,
        entries,
        units,
        layout: Layout::Plain,
        members,
    }
}

/// The groups and width constraints of `family` at `channels` (checked by the caller).
pub fn groups(family: &Family, channels: &Channels) -> (Vec<ChannelGroup>, Vec<Distinct>) {
    let plan = family.plan(channels);
    let stems: &[&str] = match family.depthwise {
        DepthwiseKind::Square => &["in_c"],
        DepthwiseKind::Separable => &["in_c", "in_c2"],
    };
    let mut groups = Vec::new();
    let mut distinct = Vec::new();
    let mut hidden = Vec::new();
    let mut stream = Vec::new();
    for stem in stems {
        hidden.extend(produces(&format!("{stem}.0")));
        hidden.push(reads(&format!("{stem}.1")));
        stream.extend(produces(&format!("{stem}.1")));
    }
    groups.push(group(
        "stem hidden".into(),
        vec![0],
        plan.stem_hidden,
        hidden,
    ));
    let mut stream = group("stem output".into(), vec![1], plan.stem_out, stream);

    let stage_of = N_BLOCKS
        .iter()
        .enumerate()
        .flat_map(|(s, &n)| std::iter::repeat_n(s + 1, n));
    for (i, (block, stage)) in plan.blocks.iter().zip(stage_of).enumerate() {
        let name = format!("stages.s{stage}.b{}", i + 1);
        let (exp, dws, proj) = match family.depthwise {
            DepthwiseKind::Square => (
                format!("{name}.block.0"),
                vec![format!("{name}.block.1")],
                format!("{name}.block.2"),
            ),
            DepthwiseKind::Separable => (
                format!("{name}.exp_conv"),
                vec![format!("{name}.depth_conv"), format!("{name}.depth_conv2")],
                format!("{name}.proj_conv"),
            ),
        };
        stream.members.push(reads(&exp));
        if block.out_ch != block.in_ch {
            // No residual add: the block's output starts a new stream.
            let next = format!("stream after {name}");
            distinct.push((stream.name.clone(), next.clone()));
            let done = std::mem::replace(&mut stream, group(next, vec![], block.out_ch, vec![]));
            groups.push(done);
        }
        let mut expansion = produces(&exp).to_vec();
        for dw in &dws {
            expansion.extend(produces(dw));
        }
        expansion.push(reads(&proj));
        groups.push(group(
            format!("{name} expansion"),
            vec![2 + 2 * i],
            block.exp_ch,
            expansion,
        ));
        stream.entries.push(3 + 2 * i);
        stream.members.extend(produces(&proj));
        if family.grn {
            stream.members.push(member(
                format!("{name}.after_block_norm"),
                MemberKind::ChannelNorm,
            ));
        }
    }
    stream.members.push(reads("feed_forward"));
    groups.push(stream);
    // Groups in the order of the width list.
    groups.sort_by_key(|g| g.entries[0]);
    let index = |name: &str| groups.iter().position(|g| g.name == name).unwrap_or(0);
    let distinct = distinct
        .iter()
        .map(|(a, b)| Distinct {
            a: (index(a), 1),
            b: (index(b), 1),
        })
        .collect();
    (groups, distinct)
}
