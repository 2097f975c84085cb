//! Channel groups of TF-SepNet-64 (`models::tfsepnet64`), from its layout and widths.
//!
//! - Stem (entry 0): a unit is one channel of the first stem conv together with the
//!   [`STEM_FANOUT`] outputs of its group in the grouped second conv; with the BatchNorms, the
//!   ResNorm after the stem and the first transition conv that reads them.
//! - Each stage (entry 1 + s): every channel of a TF-SepConv block is tied to the stage's stream
//!   by the residual adds of its halves, so a stage is one group: the transition conv that
//!   starts it, every block's depthwise and pointwise convs (each in its half, after that block's
//!   shuffle: [`Layout::Shuffled`]), the ResNorm ending it and the conv that reads it (the next
//!   transition conv, or the classifier).

use super::groups::{ChannelGroup, Distinct, Layout, Member, MemberKind, Part};
use crate::error::{Error, Result};
use crate::models::tfsepnet64::{layout, Config, Entry, STAGE_BLOCKS, STEM_FANOUT};

fn member(module: String, kind: MemberKind, space: usize, part: Part, per_unit: i64) -> Member {
    Member {
        module,
        kind,
        space,
        part,
        per_unit,
    }
}

/// A TF-SepNet `ConvBnRelu` (`_conv`, `_bn`) producing the group's channels.
fn produces(unit: &str, space: usize, part: Part, per_unit: i64) -> [Member; 2] {
    [
        member(
            format!("{unit}._conv"),
            MemberKind::ConvOut,
            space,
            part,
            per_unit,
        ),
        member(
            format!("{unit}._bn"),
            MemberKind::BatchNorm,
            space,
            part,
            per_unit,
        ),
    ]
}

/// The groups and width constraints of `cfg` (validated by the caller).
pub fn groups(cfg: &Config) -> Result<(Vec<ChannelGroup>, Vec<Distinct>)> {
    let widths = cfg.widths();
    let layers = layout(cfg.depth);
    let at = |i: usize| format!("middle_layers.{i}");
    // Module index of each stage's blocks and of the norm that ends it.
    let blocks_of = |s: usize| -> Vec<usize> {
        (0..layers.len())
            .filter(|&i| layers[i] == Entry::Block { stage: s })
            .collect()
    };
    let mut channels_in = widths.stem_out();
    for (s, &w) in widths.stages.iter().enumerate() {
        if w == channels_in {
            return Err(Error::msg(format!(
                "pruning `tfsepnet64`: stage {} starts without a transition conv (its width {w} \
                 equals its input's); such a network's stage is tied to the one before it, which \
                 this pruner does not model",
                s + 1
            )));
        }
        channels_in = w;
    }

    let first = blocks_of(0)[0];
    let mut stem: Vec<Member> = produces("conv_layers.0", 0, Part::Whole, 1).to_vec();
    stem.extend(produces("conv_layers.1", 0, Part::Whole, STEM_FANOUT));
    stem.push(member(
        at(0),
        MemberKind::ChannelNorm,
        0,
        Part::Whole,
        STEM_FANOUT,
    ));
    stem.push(member(
        format!("{}.trans_conv._conv", at(first)),
        MemberKind::ConvIn,
        0,
        Part::Whole,
        STEM_FANOUT,
    ));
    let mut groups = vec![ChannelGroup {
        name: "stem".into(),
        entries: vec![0],
        units: widths.stem_hidden,
        layout: Layout::Plain,
        members: stem,
    }];
    let mut distinct = Vec::new();

    for (s, &blocks) in STAGE_BLOCKS.iter().enumerate() {
        let indices = blocks_of(s);
        let mut members =
            produces(&format!("{}.trans_conv", at(indices[0])), 0, Part::Whole, 1).to_vec();
        for (k, &i) in indices.iter().enumerate() {
            for (branch, part) in [("freq", Part::FirstHalf), ("temp", Part::SecondHalf)] {
                let unit = |conv: &str| format!("{}.{branch}_{conv}", at(i));
                members.extend(produces(&unit("dw_conv"), k + 1, part, 1));
                members.extend(produces(&unit("pw_conv"), k + 1, part, 1));
                members.push(member(
                    format!("{}._conv", unit("pw_conv")),
                    MemberKind::ConvIn,
                    k + 1,
                    part,
                    1,
                ));
            }
        }
        let last = *indices.last().unwrap_or(&0);
        members.push(member(
            at(last + 1),
            MemberKind::ChannelNorm,
            blocks,
            Part::Whole,
            1,
        ));
        let reader = match blocks_of(s + 1).first() {
            Some(&next) => format!("{}.trans_conv._conv", at(next)),
            None => "classifier.conv".to_string(),
        };
        members.push(member(reader, MemberKind::ConvIn, blocks, Part::Whole, 1));
        let (prev, per_unit) = if s == 0 { (0, STEM_FANOUT) } else { (s, 1) };
        distinct.push(Distinct {
            a: (prev, per_unit),
            b: (s + 1, 1),
        });
        groups.push(ChannelGroup {
            name: format!("stage {}", s + 1),
            entries: vec![1 + s],
            units: widths.stages[s],
            layout: Layout::Shuffled { blocks },
            members,
        });
    }
    Ok((groups, distinct))
}
