// Markdown table cells (see markdown.h).
#include "strata/core/markdown.h"

#include <cctype>

namespace strata::core {
namespace {

std::string cell(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += "\\|";
    else out += c == '\n' ? ' ' : c;
  }
  return out;
}

}  // namespace

std::string md_text(const std::string& text) {
  std::string out;
  for (char c : cell(text)) {
    if (c == '<') out += "&lt;";
    else if (c == '*') out += "\\*";
    else out += c;
  }
  return out;
}

std::string md_code(const std::string& text) { return text.empty() ? "" : "`" + cell(text) + "`"; }

std::string md_sentence(std::string text) {
  if (!text.empty()) text[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(text[0])));
  return text + ".";
}

}  // namespace strata::core
