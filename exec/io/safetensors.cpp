#include "exec/io/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace eellm::exec {

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

StatusOr<SafetensorsFile> parse_safetensors(const std::string& bytes, const std::string& source) {
  if (bytes.size() < 8) return Status::corruption(source + ": too short for a safetensors file");
  uint64_t hlen = 0;
  std::memcpy(&hlen, bytes.data(), 8);
  if (hlen > bytes.size() - 8)
    return Status::corruption(source + ": header length " + std::to_string(hlen) + " exceeds the file size");
  nlohmann::json header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(hlen), nullptr,
                                                /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) return Status::corruption(source + ": header is not a JSON object");
  SafetensorsFile f;
  const size_t data_start = 8 + hlen, data_size = bytes.size() - data_start;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      for (auto m = it->begin(); m != it->end(); ++m)
        if (m->is_string()) f.metadata[m.key()] = m->get<std::string>();
      continue;
    }
    const nlohmann::json& e = *it;
    if (!e.contains("dtype") || e["dtype"] != "F32")
      return Status::corruption(source + ": tensor " + it.key() + " is not F32");
    Tensor t;
    size_t expect = 1;
    for (const auto& d : e["shape"]) {
      t.shape.push_back(d.get<int64_t>());
      expect *= static_cast<size_t>(d.get<int64_t>());
    }
    const size_t b = e["data_offsets"][0].get<size_t>(), end = e["data_offsets"][1].get<size_t>();
    if (end < b || end > data_size || end - b != expect * sizeof(float))
      return Status::corruption(source + ": tensor " + it.key() + " has data_offsets [" + std::to_string(b) + ", " +
                                std::to_string(end) + "] inconsistent with its shape " + shape_string(t.shape) +
                                " or the file size");
    t.data.resize(expect);
    std::memcpy(t.data.data(), bytes.data() + data_start + b, end - b);
    f.tensors[it.key()] = std::move(t);
  }
  return f;
}

StatusOr<std::string> read_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return Status::not_found(path + " does not exist");
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
