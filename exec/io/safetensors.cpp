#include "exec/io/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "exec/io/json_check.h"

namespace eellm::exec {
namespace fs = std::filesystem;

std::string safetensors_bytes(const std::vector<std::pair<std::string, const Tensor*>>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    const size_t bytes = t->numel() * sizeof(float);
    header[name] = {{"dtype", "F32"}, {"shape", t->shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string h = header.dump();
  while (h.size() % 8 != 0) h += ' ';  // the data section starts 8-byte aligned
  const uint64_t hlen = h.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &hlen, 8);
  out += h;
  out.reserve(out.size() + offset);
  for (const auto& [name, t] : tensors) out.append(reinterpret_cast<const char*>(t->ptr()), t->numel() * sizeof(float));
  return out;
}

namespace {

constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;  // the safetensors format's own limit

// One header entry into `e` (name already set).
Status index_entry(const nlohmann::json& j, size_t data_size, const std::string& where, SafetensorsEntry& e) {
  EELLM_ASSIGN_OR_RETURN(std::string dtype, json_string(j, "dtype", where));
  if (dtype != "F32") return Status::corruption(where + ".dtype is \"" + dtype + "\"; this reader takes F32 only");
  if (!j.contains("shape")) return Status::corruption(where + ".shape is missing");
  EELLM_ASSIGN_OR_RETURN(e.shape, json_shape(j["shape"], where + ".shape"));
  EELLM_ASSIGN_OR_RETURN(const nlohmann::json* off, json_array(j, "data_offsets", where));
  if (off->size() != 2 || !(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned())
    return Status::corruption(where + ".data_offsets is " + off->dump() + ", expected [begin, end] (two integers ≥ 0)");
  const uint64_t b = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
  const uint64_t want = static_cast<uint64_t>(shape_elements(e.shape)) * sizeof(float);  // ≤ 2^42
  if (end < b || end > data_size)
    return Status::corruption(where + ".data_offsets [" + std::to_string(b) + ", " + std::to_string(end) +
                              "] is outside the data section of " + std::to_string(data_size) + " bytes");
  if (end - b != want)
    return Status::corruption(where + ".data_offsets [" + std::to_string(b) + ", " + std::to_string(end) + "] hold " +
                              std::to_string(end - b) + " bytes; F32 shape " + shape_string(e.shape) + " needs " +
                              std::to_string(want));
  e.begin = b, e.end = end;
  return Status::ok();
}

StatusOr<SafetensorsIndex> index_header(const std::string& bytes, const std::string& source) {
  if (bytes.size() < 8) return Status::corruption(source + ": too short for a safetensors file");
  uint64_t hlen = 0;
  std::memcpy(&hlen, bytes.data(), 8);
  if (hlen > bytes.size() - 8 || hlen > kMaxHeaderBytes)
    return Status::corruption(source + ": header length " + std::to_string(hlen) +
                              " exceeds the file size or the 100 MB limit");
  EELLM_ASSIGN_OR_RETURN(nlohmann::json header,
                         parse_json_bounded(std::string_view(bytes).substr(8, hlen), source + ": header", 8));
  if (!header.is_object()) return Status::corruption(source + ": header is not a JSON object");
  SafetensorsIndex idx;
  idx.data_start = 8 + hlen;
  const size_t data_size = bytes.size() - idx.data_start;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) return Status::corruption(source + ": __metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) return Status::corruption(source + ": __metadata__." + m.key() + " is not a string");
        idx.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    SafetensorsEntry e;
    e.name = it.key();
    EELLM_RETURN_IF_ERROR(index_entry(*it, data_size, source + ": tensor " + it.key(), e));
    idx.tensors.push_back(std::move(e));
  }
  std::sort(idx.tensors.begin(), idx.tensors.end(),
            [](const SafetensorsEntry& a, const SafetensorsEntry& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < idx.tensors.size(); ++i)
    if (idx.tensors[i].begin < idx.tensors[i - 1].end)
      return Status::corruption(source + ": tensors " + idx.tensors[i - 1].name + " and " + idx.tensors[i].name +
                                " overlap in the data section");
  return idx;
}

Status check_finite(const float* v, size_t n, const std::string& where) {
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(v[i]))
      return Status::corruption(where + " holds " + std::to_string(v[i]) + " at element " + std::to_string(i) +
                                " (non-finite weights are refused; --allow-nonfinite-weights loads them)");
  return Status::ok();
}

}  // namespace

StatusOr<SafetensorsIndex> index_safetensors(const std::string& bytes, const std::string& source) {
  try {
    return index_header(bytes, source);
  } catch (const std::exception& e) {  // a backstop: index_header checks every type it reads
    return Status::corruption(source + ": malformed safetensors header (" + e.what() + ")");
  }
}

StatusOr<SafetensorsFile> parse_safetensors(const std::string& bytes, const std::string& source, bool allow_nonfinite) {
  EELLM_ASSIGN_OR_RETURN(SafetensorsIndex idx, index_safetensors(bytes, source));
  SafetensorsFile f;
  f.metadata = std::move(idx.metadata);
  for (const SafetensorsEntry& e : idx.tensors) {
    Tensor t;
    t.shape = e.shape;
    t.data.resize((e.end - e.begin) / sizeof(float));
    std::memcpy(t.data.data(), bytes.data() + idx.data_start + e.begin, e.end - e.begin);
    if (!allow_nonfinite) EELLM_RETURN_IF_ERROR(check_finite(t.ptr(), t.numel(), source + ": tensor " + e.name));
    f.tensors[e.name] = std::move(t);
  }
  return f;
}

Status check_safetensors(const std::string& bytes, const std::string& source, bool allow_nonfinite) {
  EELLM_ASSIGN_OR_RETURN(SafetensorsIndex idx, index_safetensors(bytes, source));
  if (allow_nonfinite) return Status::ok();
  std::vector<float> chunk;
  for (const SafetensorsEntry& e : idx.tensors) {
    chunk.resize((e.end - e.begin) / sizeof(float));
    std::memcpy(chunk.data(), bytes.data() + idx.data_start + e.begin, e.end - e.begin);
    EELLM_RETURN_IF_ERROR(check_finite(chunk.data(), chunk.size(), source + ": tensor " + e.name));
  }
  return Status::ok();
}

StatusOr<std::string> read_file(const std::string& path, bool follow_symlinks) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::not_found(path + " does not exist");
    return Status::io_error("cannot stat " + path + ": " + std::strerror(errno));
  }
  if (S_ISLNK(st.st_mode)) {
    if (!follow_symlinks) return Status::invalid_argument(path + " is a symbolic link, expected a regular file");
    if (::stat(path.c_str(), &st) != 0) return Status::io_error("cannot follow " + path + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode))
    return Status::invalid_argument(path + " is " + (S_ISDIR(st.st_mode) ? "a directory" : "not a regular file") +
                                    ", expected a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::io_error("cannot open " + path);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return Status::io_error("error reading " + path);
  return s;
}

StatusOr<SafetensorsFile> read_safetensors(const std::string& path) {
  EELLM_ASSIGN_OR_RETURN(std::string bytes, read_file(path));
  return parse_safetensors(bytes, path);
}

Status fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return Status::io_error("cannot open directory " + dir + ": " + std::strerror(errno));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Status::io_error("fsync " + dir + ": " + std::strerror(errno));
  return Status::ok();
}

Status write_file_atomic(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return Status::io_error("cannot create " + tmp + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string err = std::strerror(errno);
      ::close(fd);
      return Status::io_error("write " + tmp + ": " + err);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) return Status::io_error("fsync/close " + tmp + ": " + std::strerror(errno));
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return Status::io_error("rename " + tmp + " → " + path + ": " + std::strerror(errno));
  std::string dir = std::filesystem::path(path).parent_path().string();
  return fsync_dir(dir.empty() ? "." : dir);
}

namespace {
// Creates `path` exclusively and removes it again; the errno text on failure.
std::string probe_create(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) return std::strerror(errno);
  ::close(fd);
  ::unlink(path.c_str());
  return "";
}
}  // namespace

Status check_writable_dir(const std::string& dir, const std::string& option) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir, ec))
    return Status::invalid_argument(option + " " + dir + ": cannot be used as a directory (" +
                                    (ec ? ec.message() : "it exists and is not a directory") + ")");
  const std::string err = probe_create((fs::path(dir) / (".eellm_probe_" + std::to_string(::getpid()))).string());
  if (!err.empty()) return Status::io_error(option + " " + dir + ": cannot write there (" + err + ")");
  return Status::ok();
}

Status check_writable_file(const std::string& path, const std::string& option) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode))
      return Status::invalid_argument(option + " " + path + ": " +
                                      (S_ISDIR(st.st_mode) ? "is a directory" : "is not a regular file"));
    const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND);
    if (fd < 0) return Status::io_error(option + " " + path + ": cannot write it (" + std::strerror(errno) + ")");
    ::close(fd);
    return Status::ok();
  }
  const int stat_errno = errno;
  // Not there yet: its name must be one the file system takes, and its directory must take a new file
  // (a probe named by pid, so that the ranks of one job can check the same destination at once).
  if (stat_errno == ENAMETOOLONG || fs::path(path).filename().string().size() > NAME_MAX)
    return Status::invalid_argument(option + " " + path.substr(0, 80) + "...: the name is too long");
  if (stat_errno != ENOENT)  // a link loop, a path through a file, no permission: not a place to write
    return Status::invalid_argument(option + " " + path + ": cannot be used (" + std::strerror(stat_errno) + ")");
  fs::path dir = fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return Status::invalid_argument(option + " " + path + ": its directory " + dir.string() + " does not exist");
  const std::string err = probe_create((dir / (".eellm_probe_" + std::to_string(::getpid()))).string());
  if (!err.empty()) return Status::io_error(option + " " + path + ": cannot create it (" + err + ")");
  return Status::ok();
}

std::string fnv1a64_hex(const std::string& bytes) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace eellm::exec
