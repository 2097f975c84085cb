//! Structured channel pruning, as Zhang et al. (DCASE2025, SSCP-Mobile) used NNI's AGP pruner:
//! whole conv output channels are removed from a trained network, gradually, until its widths
//! reach a target; the network is then rebuilt at those widths.
//!
//! - [`ChannelGroups`]: the sets of channels that must go together (one [`ChannelGroup`] per
//!   entry, or tied entries, of the architecture's explicit width list), derived once per family
//!   from the model's own width plan (`cp_family`, `tfsepnet`).
//! - Importance: by default the L1 norm of each channel's filters, summed over every conv of the
//!   group that produces the channel ([`ChannelGroups::importance`]); [`ChannelGroups::select`]
//!   keeps the highest-ranked channels of each group.
//! - [`ChannelMask`]: the kept channels of every group. Applied to a base network it zeroes the
//!   pruned filters and their BatchNorms (the masked network, trained while pruning);
//!   [`ChannelGroups::shrink`] builds the smaller network (`Channels::Explicit` widths) with the
//!   kept weights, whose outputs equal the masked network's.
//! - [`AgpSchedule`], [`AgpPruner`]: the cubic sparsity schedule of Zhu & Gupta (2017) and the
//!   per-step keep counts towards a target: explicit widths or a complexity [`Budget`].
//! - [`import_nni_masks`]: the widths an NNI 3.x mask file (the authors' `c64_mask_1.pth`) prunes
//!   a base network to, read with our own checkpoint reader.

mod agp;
mod budget;
mod cp_family;
mod groups;
mod mask;
mod nni;
mod tfsepnet;

pub use agp::{AgpPruner, AgpSchedule, PruneTarget};
pub use budget::{counts_for_budget, Budget};
pub use groups::{ChannelGroup, ChannelGroups, Distinct, Layout, Member, MemberKind, Part};
pub use mask::{ChannelMask, Shrunk};
pub use nni::{import_nni_masks, nni_mask_counts};
