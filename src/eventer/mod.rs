//! `nodeprobe eventer`: watch every core/v1 Event in the cluster and forward it to chat
//! robots (DingTalk, Feishu/Lark), webhooks and stdout — kube-eventer's job.

pub mod event;
pub mod filter;
pub mod template;
pub mod uri;
