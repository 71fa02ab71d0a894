// `eellm generate --batch-file` limits (exec/generate/generate.h read_prompt_file): a stated maximum
// of prompts and bytes, regular files only, blank lines named.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "exec/generate/generate.h"
#include "test_util.h"

namespace eellm::exec {
namespace {

std::string write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

TEST(PromptFile, BoundedInPromptsAndBytes) {
  const std::string dir = testing::temp_dir("prompt_file");
  auto ok = read_prompt_file(write(dir + "/ok.txt", "one\ntwo\\nlines\n"));
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_EQ(*ok, (std::vector<std::string>{"one", "two\nlines"}));

  std::string many;
  for (size_t i = 0; i <= kMaxBatchPrompts; ++i) many += "p\n";
  auto too_many = read_prompt_file(write(dir + "/many.txt", many));
  ASSERT_FALSE(too_many.is_ok());
  EXPECT_NE(too_many.status().message().find("holds more than 256 prompts"), std::string::npos)
      << too_many.status().to_string();
  auto big = read_prompt_file(write(dir + "/big.txt", std::string(kMaxBatchFileBytes + 1, 'x')));
  ASSERT_FALSE(big.is_ok());
  EXPECT_NE(big.status().message().find("at most 4194304 are read"), std::string::npos) << big.status().to_string();
  auto blank = read_prompt_file(write(dir + "/blank.txt", "a\n\nb\n"));
  ASSERT_FALSE(blank.is_ok());
  EXPECT_NE(blank.status().message().find("blank.txt:2: empty prompt"), std::string::npos);
  auto directory = read_prompt_file(dir);
  ASSERT_FALSE(directory.is_ok());
  EXPECT_NE(directory.status().message().find("is a directory"), std::string::npos) << directory.status().to_string();
  ASSERT_EQ(::mkfifo((dir + "/fifo").c_str(), 0644), 0);
  auto fifo = read_prompt_file(dir + "/fifo");  // refused by type: reading would block forever
  ASSERT_FALSE(fifo.is_ok());
  EXPECT_NE(fifo.status().message().find("not a regular file"), std::string::npos) << fifo.status().to_string();
}

}  // namespace
}  // namespace eellm::exec
