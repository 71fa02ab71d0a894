// The small part of POSIX shell that launch scripts use: comments, `\` line continuations, single
// and double quotes, VAR=value assignments (also `export`), $VAR / ${VAR} / ${VAR:-default}
// expansion with word splitting outside quotes, $(( )) integer arithmetic. Command substitution
// $(...) and `...` expand to nothing: nothing is ever executed.
#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdlib>
#include <map>

#include "model/megatron.h"
#include "model/parse.h"

namespace eellm {
namespace {

bool is_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

// Bounds on hostile scripts: parentheses nested deeper than any real script (the evaluator
// recurses), and the text one expansion may grow to (`A=$A$A` doubling).
constexpr int kMaxArithDepth = 64;
constexpr size_t kMaxExpandedBytes = size_t{4} << 20;

// Integer arithmetic for $(( )): + - * / % and parentheses over literals and variable names.
class Arith {
 public:
  Arith(const std::string& s, const std::map<std::string, std::string>& vars) : s_(s), vars_(vars) {}
  StatusOr<long long> eval() {
    long long v = expr();
    skip();
    if (!ok_ || pos_ != s_.size())
      return Status::invalid_argument("cannot evaluate $((" + s_.substr(0, 80) + (s_.size() > 80 ? "..." : "") + "))" +
                                      (why_.empty() ? std::string() : ": " + why_));
    return v;
  }

 private:
  void skip() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  long long expr() {
    long long v = term();
    for (skip(); pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-'); skip()) {
      const char op = s_[pos_++];
      const long long r = term();
      if (op == '+' ? __builtin_add_overflow(v, r, &v) : __builtin_sub_overflow(v, r, &v)) return overflow();
    }
    return v;
  }
  long long term() {
    long long v = factor();
    for (skip(); pos_ < s_.size() && (s_[pos_] == '*' || s_[pos_] == '/' || s_[pos_] == '%'); skip()) {
      const char op = s_[pos_++];
      const long long r = factor();
      if (op != '*' && r == 0) return error("division by zero");
      if (op == '*') {
        if (__builtin_mul_overflow(v, r, &v)) return overflow();
      } else if (r == -1) {  // LLONG_MIN / -1 traps (SIGFPE); x % -1 is 0
        if (op == '/' && v == LLONG_MIN) return overflow();
        v = op == '/' ? -v : 0;
      } else {
        v = op == '/' ? v / r : v % r;
      }
    }
    return v;
  }
  long long factor() {
    skip();
    if (pos_ >= s_.size() || !ok_) {
      ok_ = false;
      return 0;
    }
    if (s_[pos_] == '(' || s_[pos_] == '-') {
      if (++depth_ > kMaxArithDepth) return error("nested deeper than " + std::to_string(kMaxArithDepth) + " levels");
      const long long v = s_[pos_] == '(' ? group() : negate();
      --depth_;
      return v;
    }
    return operand();
  }
  long long negate() {
    ++pos_;
    const long long v = factor();
    if (v == LLONG_MIN) return overflow();
    return -v;
  }
  long long group() {
    ++pos_;
    const long long v = expr();
    skip();
    if (pos_ < s_.size() && s_[pos_] == ')')
      ++pos_;
    else
      ok_ = false;
    return v;
  }
  // A literal or a variable name (optionally $NAME); an unset or empty variable is 0.
  long long operand() {
    if (s_[pos_] == '$') ++pos_;
    const size_t start = pos_;
    while (pos_ < s_.size() && is_name_char(s_[pos_])) ++pos_;
    const std::string tok = s_.substr(start, pos_ - start);
    if (tok.empty()) {
      ok_ = false;
      return 0;
    }
    std::string text = tok;
    if (!std::isdigit(static_cast<unsigned char>(tok[0]))) {
      auto it = vars_.find(tok);
      text = it == vars_.end() || it->second.empty() ? "0" : it->second;
    }
    long long v = 0;
    if (!parse_number(text, v)) return error("'" + text + "' is not a 64-bit integer");
    return v;
  }
  long long overflow() { return error("the result overflows a 64-bit integer"); }
  long long error(const std::string& why) {
    if (ok_) why_ = why;
    ok_ = false;
    return 0;
  }
  const std::string& s_;
  const std::map<std::string, std::string>& vars_;
  size_t pos_ = 0;
  int depth_ = 0;
  bool ok_ = true;
  std::string why_;
};

struct Word {
  std::string text;
  bool present = false;  // "" is a word; an empty unquoted expansion is not
};

class ShellReader {
 public:
  // The launcher's variables (torchrun's, Slurm's) start from the environment when set there; the
  // script's own assignments override them.
  explicit ShellReader(const std::string& s) : s_(s) {
    for (const char* name : {"WORLD_SIZE", "NNODES", "NUM_NODES", "NODE_RANK", "RANK", "MASTER_ADDR", "MASTER_PORT",
                             "NPROC_PER_NODE", "GPUS_PER_NODE", "SLURM_NNODES", "SLURM_JOB_NUM_NODES"})
      if (const char* v = std::getenv(name)) vars_[name] = v;
  }

  // Splits into commands, applying assignments as they come; returns every non-assignment command.
  StatusOr<std::vector<std::vector<std::string>>> run() {
    while (pos_ < s_.size()) {
      EELLM_RETURN_IF_ERROR(step());
      if (!ok_) return Status::invalid_argument(error_);
    }
    end_command();
    return commands_;
  }

 private:
  void end_word() {
    if (w_.present) words_.push_back(w_.text);
    w_ = Word{};
    assignment_word_ = false;
  }
  void end_command() {
    end_word();
    if (!words_.empty()) apply(words_, commands_);
    words_.clear();
  }

  // Reads what starts at pos_: a character, an escape, a quoted string, an expansion, a separator.
  Status step() {
    const char c = s_[pos_];
    if (c == '\\' && pos_ + 1 < s_.size()) {
      if (s_[pos_ + 1] != '\n') {  // else a continuation
        w_.text += s_[pos_ + 1];
        w_.present = true;
      }
      pos_ += 2;
    } else if (c == '>' || c == '<') {
      skip_redirection();
    } else if (c == '\n' || c == ';' || c == '|' || c == '&') {
      end_command();
      ++pos_;
    } else if (c == ' ' || c == '\t' || c == '\r') {
      end_word();
      ++pos_;
    } else if (c == '#' && !w_.present) {
      while (pos_ < s_.size() && s_[pos_] != '\n') ++pos_;
    } else if (c == '\'') {
      const size_t end = s_.find('\'', pos_ + 1);
      if (end == std::string::npos) return Status::invalid_argument("unterminated ' quote in the command line");
      w_.text += s_.substr(pos_ + 1, end - pos_ - 1);
      w_.present = true;
      pos_ = end + 1;
    } else if (c == '"') {
      return double_quoted();
    } else if (c == '$' || c == '`') {
      const std::string value = expansion();
      if (ok_) add_unquoted(value);
    } else {
      w_.text += c;
      w_.present = true;
      ++pos_;
      // NAME= at the start of a command: the value is not word-split (shell assignment rules).
      if (c == '=' && words_are_assignments(words_) && is_name(w_.text.substr(0, w_.text.size() - 1)))
        assignment_word_ = true;
    }
    return Status::ok();
  }

  // Redirection (`> log 2>&1`): drop the fd number, the operator and its target.
  void skip_redirection() {
    if (!w_.text.empty() &&
        std::all_of(w_.text.begin(), w_.text.end(), [](char d) { return std::isdigit(static_cast<unsigned char>(d)); }))
      w_ = Word{};
    else
      end_word();
    while (pos_ < s_.size() && (s_[pos_] == '>' || s_[pos_] == '<' || s_[pos_] == '&')) ++pos_;
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t')) ++pos_;
    while (pos_ < s_.size() && !std::isspace(static_cast<unsigned char>(s_[pos_])) && s_[pos_] != ';') ++pos_;
  }

  // At '"': the quoted text, with \-escapes of " \ $ ` and expansions (not word-split).
  Status double_quoted() {
    ++pos_;
    w_.present = true;
    while (pos_ < s_.size() && s_[pos_] != '"') {
      if (s_[pos_] == '\\' && pos_ + 1 < s_.size()) {
        const char n = s_[pos_ + 1];
        if (n == '\n') {
          pos_ += 2;
        } else if (n == '"' || n == '\\' || n == '$' || n == '`') {
          w_.text += n;
          pos_ += 2;
        } else {
          w_.text += '\\';
          ++pos_;
        }
      } else if (s_[pos_] == '$' || s_[pos_] == '`') {
        w_.text += expansion();
      } else {
        w_.text += s_[pos_++];
      }
    }
    if (pos_ >= s_.size()) return Status::invalid_argument("unterminated \" quote in the command line");
    ++pos_;
    return Status::ok();
  }

  // An unquoted expansion: split on whitespace, except as an assignment's value.
  void add_unquoted(const std::string& value) {
    if (assignment_word_) {
      w_.text += value;
      w_.present = true;
      return;
    }
    for (char v : value) {
      if (std::isspace(static_cast<unsigned char>(v))) {
        if (w_.present) end_word();
      } else {
        w_.text += v;
        w_.present = true;
      }
    }
  }

  static bool is_name(const std::string& s) {
    if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
    for (char c : s)
      if (!is_name_char(c)) return false;
    return true;
  }
  static bool is_assignment(const std::string& w) {
    const size_t eq = w.find('=');
    return eq != std::string::npos && is_name(w.substr(0, eq));
  }
  static bool words_are_assignments(const std::vector<std::string>& words) {
    for (const std::string& w : words)
      if (w != "export" && !is_assignment(w)) return false;
    return true;
  }

  void apply(const std::vector<std::string>& words, std::vector<std::vector<std::string>>& commands) {
    if (words_are_assignments(words)) {
      for (const std::string& w : words) {
        if (w == "export") continue;
        const size_t eq = w.find('=');
        vars_[w.substr(0, eq)] = w.substr(eq + 1);
      }
      return;
    }
    commands.push_back(words);
  }

  // At '$' or '`': returns the expansion and advances past it; the script's expansions together
  // stay under kMaxExpandedBytes (a few doubling assignments would otherwise take gigabytes).
  std::string expansion() {
    std::string value = expand_one();
    expanded_bytes_ += value.size();
    if (expanded_bytes_ > kMaxExpandedBytes)
      return fail("the variable expansions exceed " + std::to_string(kMaxExpandedBytes >> 20) +
                  " MiB (a script that doubles a variable?)");
    return value;
  }
  std::string expand_one() {
    if (s_[pos_] == '`') {
      const size_t end = s_.find('`', pos_ + 1);
      pos_ = end == std::string::npos ? s_.size() : end + 1;
      return "";
    }
    ++pos_;  // '$'
    if (s_.compare(pos_, 2, "((") == 0) {
      const size_t start = pos_ + 2;
      int depth = 2;
      size_t i = start;
      for (; i < s_.size() && depth > 0; ++i) depth += s_[i] == '(' ? 1 : s_[i] == ')' ? -1 : 0;
      if (depth != 0) return fail("unterminated $(( in the command line");
      const std::string expr = s_.substr(start, i - 2 - start);
      pos_ = i;
      auto v = Arith(expr, vars_).eval();
      if (!v.is_ok()) return fail(v.status().message());
      return std::to_string(*v);
    }
    if (pos_ < s_.size() && s_[pos_] == '(') {  // command substitution: never run
      int depth = 0;
      for (; pos_ < s_.size(); ++pos_) {
        depth += s_[pos_] == '(' ? 1 : s_[pos_] == ')' ? -1 : 0;
        if (depth == 0) break;
      }
      ++pos_;
      return "";
    }
    if (pos_ < s_.size() && s_[pos_] == '{') {
      const size_t end = s_.find('}', pos_);
      if (end == std::string::npos) return fail("unterminated ${ in the command line");
      const std::string inner = s_.substr(pos_ + 1, end - pos_ - 1);
      pos_ = end + 1;
      const size_t dflt = inner.find(":-");
      const std::string name = inner.substr(0, dflt);
      auto it = vars_.find(name);
      if ((it == vars_.end() || it->second.empty()) && dflt != std::string::npos) return inner.substr(dflt + 2);
      return it == vars_.end() ? "" : it->second;
    }
    const size_t start = pos_;
    while (pos_ < s_.size() && is_name_char(s_[pos_])) ++pos_;
    if (pos_ == start) return "$";
    auto it = vars_.find(s_.substr(start, pos_ - start));
    return it == vars_.end() ? "" : it->second;
  }
  std::string fail(const std::string& msg) {
    ok_ = false;
    error_ = msg;
    return "";
  }

  const std::string& s_;
  size_t pos_ = 0;
  std::map<std::string, std::string> vars_;
  bool ok_ = true;
  std::string error_;
  std::vector<std::vector<std::string>> commands_;  // the commands read so far
  std::vector<std::string> words_;                  // of the command being read
  Word w_;                                          // the word being read
  bool assignment_word_ = false;                    // w_ is NAME=… at the start of a command
  size_t expanded_bytes_ = 0;                       // text all expansions produced so far
};

}  // namespace

StatusOr<std::vector<std::string>> expand_launch_command(const std::string& script) {
  EELLM_ASSIGN_OR_RETURN(const auto commands, ShellReader(script).run());
  // The launch is the last command that runs a Python script or passes Megatron's --num-layers.
  for (auto it = commands.rbegin(); it != commands.rend(); ++it) {
    for (const std::string& w : *it)
      if (w.ends_with(".py") || w == "--num-layers" || w.starts_with("--num-layers=")) return *it;
  }
  return Status::invalid_argument("no Megatron launch command found: no line runs a .py script or passes --num-layers");
}

}  // namespace eellm
