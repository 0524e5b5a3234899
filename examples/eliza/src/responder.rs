//! A small ELIZA: find the first rule whose pattern matches what was said,
//! reflect the captured words ("my job" -> "your job"), and fill them into
//! one of the rule's replies. Replies are picked by a hash of the input, so
//! the same sentence always gets the same answer.

/// One rule: a pattern with one `*` matching any words (`i feel *`), or a
/// word between two (`*mother*`: the word anywhere); and the replies to
/// choose from. `{}` in a reply stands for the reflected words
/// the `*` matched.
struct Rule {
    pattern: &'static str,
    replies: &'static [&'static str],
}

const RULES: &[Rule] = &[
    Rule {
        pattern: "goodbye*",
        replies: &["Goodbye. Thank you for talking with me."],
    },
    Rule {
        pattern: "bye*",
        replies: &["Goodbye. Take good care of yourself."],
    },
    Rule {
        pattern: "*mother*",
        replies: &[
            "Tell me about your mother.",
            "How do you and your mother get along?",
        ],
    },
    Rule {
        pattern: "*father*",
        replies: &[
            "Tell me about your father.",
            "What was your father like when you were young?",
        ],
    },
    Rule {
        pattern: "i need *",
        replies: &[
            "What would it mean to you to get {}?",
            "Why do you feel you need {}?",
            "Could you manage without {}?",
        ],
    },
    Rule {
        pattern: "i feel *",
        replies: &[
            "How long have you felt {}?",
            "When you feel {}, what do you do about it?",
            "Do you often feel {}?",
        ],
    },
    Rule {
        pattern: "i am *",
        replies: &[
            "How does being {} sit with you?",
            "Did you come to me because you are {}?",
            "How long have you been {}?",
        ],
    },
    Rule {
        pattern: "i'm *",
        replies: &[
            "Why do you say you're {}?",
            "What makes you {}, do you think?",
        ],
    },
    Rule {
        pattern: "i think *",
        replies: &["What makes you think {}?", "Are you sure that {}?"],
    },
    Rule {
        pattern: "i want *",
        replies: &[
            "What would change for you if you got {}?",
            "Suppose you had {}. Then what?",
        ],
    },
    Rule {
        pattern: "i can't *",
        replies: &[
            "What stops you from being able to {}?",
            "Perhaps you could {} if you tried a little differently.",
        ],
    },
    Rule {
        pattern: "why don't you *",
        replies: &[
            "Would you like me to {}?",
            "What makes you think I don't {}?",
        ],
    },
    Rule {
        pattern: "are you *",
        replies: &[
            "Would it matter to you whether I am {}?",
            "Perhaps you would like me to be {}.",
        ],
    },
    Rule {
        pattern: "because *",
        replies: &["Is that the whole reason?", "If {}, what else follows?"],
    },
    Rule {
        pattern: "my *",
        replies: &[
            "Tell me more about your {}.",
            "Why does your {} matter so much to you?",
        ],
    },
    Rule {
        pattern: "hello*",
        replies: &[
            "Hello. What is on your mind today?",
            "Hi there. How are you feeling?",
        ],
    },
    Rule {
        pattern: "hi*",
        replies: &["Hello. What is on your mind today?"],
    },
    Rule {
        pattern: "*sorry*",
        replies: &[
            "There is no need to apologize.",
            "What are you sorry about?",
        ],
    },
    Rule {
        pattern: "yes*",
        replies: &["You seem quite sure.", "I see. Go on."],
    },
    Rule {
        pattern: "no*",
        replies: &["Why not?", "You sound certain. Why is that?"],
    },
];

/// Replies when no rule matches.
const FALLBACKS: &[&str] = &[
    "Please, go on.",
    "I see. Tell me more.",
    "How does that make you feel?",
    "Why do you say that?",
    "Let's stay with that for a moment. What comes to mind?",
];

/// First-person words and their second-person counterparts, both ways.
const REFLECTIONS: &[(&str, &str)] = &[
    ("i", "you"),
    ("me", "you"),
    ("my", "your"),
    ("mine", "yours"),
    ("myself", "yourself"),
    ("am", "are"),
    ("was", "were"),
    ("i'm", "you're"),
    ("i've", "you've"),
    ("i'll", "you'll"),
    ("i'd", "you'd"),
    ("you", "I"),
    ("your", "my"),
    ("yours", "mine"),
    ("yourself", "myself"),
    ("you're", "I'm"),
    ("you've", "I've"),
    ("you'll", "I'll"),
    ("are", "am"),
];

/// Eliza's answer to `sentence`.
pub fn reply(sentence: &str) -> String {
    let said = normalize(sentence);
    if said.is_empty() {
        return "You don't have to say anything, but I'm listening.".to_string();
    }
    for rule in RULES {
        if let Some(captured) = matches(rule.pattern, &said) {
            let template = pick(rule.replies, &said);
            return template.replace("{}", &reflect(captured.trim()));
        }
    }
    pick(FALLBACKS, &said).to_string()
}

/// The greeting sentences for someone called `name`.
pub fn introduce(name: &str) -> Vec<String> {
    let name = name.trim();
    let name = if name.is_empty() { "friend" } else { name };
    vec![
        format!("Hello {name}, I'm Eliza."),
        "I'm here to listen, and I won't judge.".to_string(),
        "Tell me what's been on your mind lately.".to_string(),
    ]
}

/// Lowercase, single-spaced, trailing punctuation removed.
fn normalize(sentence: &str) -> String {
    let words: Vec<&str> = sentence.split_whitespace().collect();
    words
        .join(" ")
        .trim_end_matches(['.', '!', '?', ',', ';'])
        .to_lowercase()
}

/// Matches `text` against `pattern` (`*` matches any text, possibly empty)
/// and returns what the `*` matched, or `""` when the pattern has none.
fn matches<'t>(pattern: &str, text: &'t str) -> Option<&'t str> {
    // `*word*`: any sentence with a word starting with `word`.
    if let Some(word) = pattern.strip_prefix('*').and_then(|p| p.strip_suffix('*')) {
        let word = word.trim();
        return text.split(' ').any(|w| w.starts_with(word)).then_some("");
    }
    match pattern.split_once('*') {
        None => (pattern == text).then_some(""),
        Some((prefix, suffix)) => {
            let prefix = prefix.trim_end();
            let suffix = suffix.trim_start();
            let rest = text.strip_prefix(prefix)?;
            // A non-empty prefix must end on a word boundary: "hi*" is not "his".
            if !(prefix.is_empty() || rest.is_empty() || rest.starts_with(' ')) {
                return None;
            }
            let captured = if suffix.is_empty() {
                rest
            } else {
                &rest[..rest.find(suffix)?]
            };
            Some(captured.trim())
        }
    }
}

/// Swaps first and second person, word by word.
fn reflect(words: &str) -> String {
    words
        .split(' ')
        .map(|word| {
            REFLECTIONS
                .iter()
                .find(|(from, _)| *from == word)
                .map_or(word, |(_, to)| to)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One of `options`, chosen by a stable hash of `key` (FNV-1a).
fn pick<'a>(options: &[&'a str], key: &str) -> &'a str {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let index = usize::try_from(hash % options.len() as u64).unwrap_or(0);
    options[index]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflects_feelings() {
        let answer = reply("I feel happy.");
        assert!(answer.contains("happy"), "{answer}");
    }

    #[test]
    fn family_comes_first() {
        let answer = reply("My mother hates me");
        assert!(answer.contains("mother"), "{answer}");
        assert!(!answer.contains("hates"), "{answer}");
    }

    #[test]
    fn swaps_pronouns() {
        assert_eq!(reflect("my job bores me"), "your job bores you");
        assert_eq!(reflect("you are kind"), "I am kind");
        let answer = reply("My boss ignores me");
        assert!(answer.contains("your boss ignores you"), "{answer}");
    }

    #[test]
    fn matches_words_not_prefixes() {
        assert_eq!(matches("hi*", "hi there"), Some("there"));
        assert_eq!(matches("hi*", "his cat"), None);
        assert_eq!(matches("i need *", "i need rest"), Some("rest"));
        assert_eq!(matches("i need *", "i needle"), None);
        assert_eq!(matches("*mother*", "i miss my mother"), Some(""));
        assert_eq!(matches("*mother*", "i smothered it"), None);
    }

    #[test]
    fn falls_back_and_is_deterministic() {
        let answer = reply("The weather is odd");
        assert!(FALLBACKS.contains(&answer.as_str()), "{answer}");
        assert_eq!(reply("The weather is odd"), answer);
        assert!(!reply("   ").is_empty());
    }

    #[test]
    fn introduces_by_name() {
        let lines = introduce("Ada");
        assert!(lines[0].contains("Ada"));
        assert!(introduce(" ")[0].contains("friend"));
    }
}
