#![doc = include_str!("../docs/guide/index.md")]

#[doc = include_str!("../docs/guide/services.md")]
pub mod services {}

#[doc = include_str!("../docs/guide/serving.md")]
pub mod serving {}

#[doc = include_str!("../docs/guide/clients.md")]
pub mod clients {}

#[doc = include_str!("../docs/guide/streaming.md")]
pub mod streaming {}

#[doc = include_str!("../docs/guide/errors.md")]
pub mod errors {}

#[doc = include_str!("../docs/guide/metadata.md")]
pub mod metadata {}

#[doc = include_str!("../docs/guide/deadlines.md")]
pub mod deadlines {}

#[doc = include_str!("../docs/guide/compression.md")]
pub mod compression {}

#[doc = include_str!("../docs/guide/limits.md")]
pub mod limits {}

#[doc = include_str!("../docs/guide/interceptors.md")]
pub mod interceptors {}

#[doc = include_str!("../docs/guide/health_and_reflection.md")]
pub mod health_and_reflection {}

#[doc = include_str!("../docs/guide/browsers.md")]
pub mod browsers {}

#[doc = include_str!("../docs/guide/testing.md")]
pub mod testing {}

#[doc = include_str!("../docs/guide/features.md")]
pub mod features {}

#[doc = include_str!("../docs/guide/production.md")]
pub mod production {}
