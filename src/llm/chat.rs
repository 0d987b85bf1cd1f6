//! Chat templates: the Jinja template a model ships in its GGUF metadata
//! (`tokenizer.chat_template`), rendered with minijinja.

use crate::error::{Error, Result};
use candle_core::quantized::gguf_file;
use std::path::Path;

/// A model's chat template.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
}

impl ChatTemplate {
    /// The template stored in a GGUF file's metadata.
    pub fn from_gguf(content: &gguf_file::Content, path: &Path) -> Result<Self> {
        let source = content
            .metadata
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .ok_or_else(|| Error::ModelCorrupt {
                path: path.to_path_buf(),
                message: "the GGUF metadata has no tokenizer.chat_template".into(),
            })?;
        Ok(ChatTemplate { source })
    }

    /// A template from its Jinja source.
    pub fn new(source: impl Into<String>) -> Self {
        ChatTemplate {
            source: source.into(),
        }
    }

    /// The Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders a system line (skipped when empty) and one user message, ending with
    /// the assistant's turn opened.
    pub fn render(&self, system: &str, user: &str) -> Result<String> {
        let mut messages = Vec::new();
        if !system.trim().is_empty() {
            messages.push(ChatMessage::new("system", system));
        }
        messages.push(ChatMessage::new("user", user));
        self.render_messages(&messages)
    }

    /// Renders a conversation, ending with the assistant's turn opened.
    pub fn render_messages(&self, messages: &[ChatMessage]) -> Result<String> {
        let mut env = minijinja::Environment::new();
        env.add_template("chat", &self.source)
            .map_err(|e| Error::Tokenizer(format!("chat template does not parse: {e}")))?;
        let messages: Vec<_> = messages
            .iter()
            .map(|m| minijinja::context! { role => m.role, content => m.content })
            .collect();
        env.get_template("chat")
            .and_then(|t| {
                t.render(minijinja::context! {
                    messages => messages,
                    add_generation_prompt => true,
                    bos_token => "",
                    eos_token => "",
                })
            })
            .map_err(|e| Error::Tokenizer(format!("chat template failed: {e}")))
    }
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message from a role and its text.
    pub fn new(role: &str, content: &str) -> Self {
        ChatMessage {
            role: role.to_string(),
            content: content.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_chatml() {
        let t = ChatTemplate::new(
            "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
        );
        let out = t.render("Be brief.", "tell me about gene TP53.").unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\ntell me about gene TP53.<|im_end|>\n<|im_start|>assistant\n"
        );
    }
}
