// Text for the cells of a generated Markdown table (the config and CLI references in
// docs/): the escapes GitHub's renderer needs, so a doc string shows as written.
#pragma once

#include <string>

namespace strata::core {

// Prose: '|' would end the cell and a newline the row; '<' would open an HTML tag
// ("<run.dir>") and '*' emphasis.
std::string md_text(const std::string& text);
// `text` as inline code ("" stays ""); only '|' and newlines need escaping there.
std::string md_code(const std::string& text);
// "where and how ..." as a sentence: "Where and how ....".
std::string md_sentence(std::string text);

}  // namespace strata::core
