#include "evoopt/data/image_folder.hpp"

#include <algorithm>
#include <cstring>
#include <map>

#include <stb_image.h>
#include <torch/torch.h>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/common/limits.hpp"

namespace evoopt::data {
namespace fs = std::filesystem;
namespace {

bool is_image_name(const std::string& name) {
  auto dot = name.rfind('.');
  if (dot == std::string::npos) return false;
  std::string ext = name.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == "jpg" || ext == "jpeg" || ext == "png";
}

std::uint64_t parse_octal(const char* p, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n && p[i] != 0 && p[i] != ' '; ++i) {
    if (p[i] < '0' || p[i] > '7') break;
    v = v * 8 + static_cast<std::uint64_t>(p[i] - '0');
  }
  return v;
}

// A flat list of images: split ("train"/"test"), class name, file name, bytes source.
struct ImageRef {
  std::string split, cls, file;
  std::function<Bytes()> load;
};

ImageFolderResult build(std::vector<ImageRef> refs, const std::string& what, const ImageFolderOptions& options) {
  std::map<std::string, std::vector<ImageRef*>> by_split_class[2];
  for (auto& r : refs) by_split_class[r.split == "train" ? 0 : 1][r.cls].push_back(&r);
  if (by_split_class[0].empty()) throw Error(what + ": no images under train/<class>/ (expected train/<class>/*.jpg|png)");
  if (by_split_class[1].empty()) throw Error(what + ": no images under test/<class>/ (expected test/<class>/*.jpg|png)");
  ImageFolderResult result;
  if (options.classes.empty()) {
    for (const auto& [cls, _] : by_split_class[0]) result.classes.push_back(cls);  // std::map: sorted by name
  } else {
    result.classes = options.classes;
  }
  limits::check(what + ": classes", static_cast<std::int64_t>(result.classes.size()), limits::kClasses);
  std::map<std::string, int> class_index;
  for (std::size_t i = 0; i < result.classes.size(); ++i) class_index[result.classes[i]] = static_cast<int>(i);
  const std::int64_t pixels = std::int64_t{options.channels} * options.height * options.width;
  for (int s = 0; s < 2; ++s) {
    const char* split_name = s == 0 ? "train" : "test";
    for (const auto& [cls, _] : by_split_class[s])
      if (!class_index.count(cls))
        throw Error(what + ": " + split_name + "/" + cls + " is not one of the " + std::to_string(result.classes.size()) + " classes");
    std::int64_t n = 0;
    for (const auto& [_, v] : by_split_class[s]) n += static_cast<std::int64_t>(v.size());
    // Decoded, the split is n × pixels bytes in memory.
    if (static_cast<double>(n) * static_cast<double>(pixels) > static_cast<double>(limits::kDataFileBytes.max))
      throw Error(limits::exceeds(what + ": " + split_name + " images decoded", std::to_string(n) + " x " + std::to_string(pixels) + " bytes",
                                  limits::kDataFileBytes));
    Dataset ds;
    ds.images = torch::empty({n, options.channels, options.height, options.width}, torch::kUInt8);
    ds.labels = torch::empty({n}, torch::kInt64);
    auto* img = ds.images.data_ptr<std::uint8_t>();
    auto* lab = ds.labels.data_ptr<std::int64_t>();
    std::int64_t i = 0;
    // Class order, then file name order: deterministic whatever the archive order.
    for (const auto& cls : result.classes) {
      auto it = by_split_class[s].find(cls);
      if (it == by_split_class[s].end()) continue;
      auto files = it->second;
      std::sort(files.begin(), files.end(), [](const ImageRef* a, const ImageRef* b) { return a->file < b->file; });
      for (const ImageRef* ref : files) {
        const std::string name = std::string(split_name) + "/" + cls + "/" + ref->file;
        Bytes encoded = ref->load();
        int w = 0, h = 0, c = 0;
        unsigned char* decoded = stbi_load_from_memory(encoded.data(), static_cast<int>(encoded.size()), &w, &h, &c, options.channels);
        if (decoded == nullptr) throw Error(what + ": " + name + ": cannot decode image (" + stbi_failure_reason() + ")");
        if (w != options.width || h != options.height) {
          stbi_image_free(decoded);
          throw Error(what + ": " + name + ": image is " + std::to_string(w) + "x" + std::to_string(h) + ", expected " +
                      std::to_string(options.width) + "x" + std::to_string(options.height));
        }
        // stb gives interleaved HWC; store planar CHW like CIFAR.
        std::uint8_t* dst = img + i * pixels;
        const int hw = w * h;
        for (int p = 0; p < hw; ++p)
          for (int ch = 0; ch < options.channels; ++ch) dst[ch * hw + p] = decoded[p * options.channels + ch];
        stbi_image_free(decoded);
        lab[i] = class_index[cls];
        ++i;
      }
    }
    (s == 0 ? result.train : result.test) = std::move(ds);
  }
  return result;
}

// Splits "…/train/<class>/<file>" into its parts; false when it does not match.
bool split_path(const std::string& path, std::string& split, std::string& cls, std::string& file) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= path.size()) {
    auto slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    if (slash > start) parts.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  if (parts.size() < 3) return false;
  split = parts[parts.size() - 3];
  cls = parts[parts.size() - 2];
  file = parts.back();
  return (split == "train" || split == "test") && is_image_name(file);
}

}  // namespace

std::vector<TarEntry> list_tar(const Bytes& tar, const std::string& what) {
  std::vector<TarEntry> entries;
  std::size_t pos = 0;
  std::string long_name;
  while (pos + 512 <= tar.size()) {
    const char* h = reinterpret_cast<const char*>(tar.data() + pos);
    if (h[0] == 0) break;  // end-of-archive block
    std::uint64_t stored = 0, computed = 0;
    stored = parse_octal(h + 148, 8);
    for (int i = 0; i < 512; ++i) computed += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(h[i]);
    if (stored != computed) throw Error(what + ": corrupt tar header at byte " + std::to_string(pos));
    const std::uint64_t size = parse_octal(h + 124, 12);
    const char type = h[156];
    std::string name(h, strnlen(h, 100));
    if (std::memcmp(h + 257, "ustar", 5) == 0 && h[345] != 0) name = std::string(h + 345, strnlen(h + 345, 155)) + "/" + name;
    if (!long_name.empty()) {
      name = long_name;
      long_name.clear();
    }
    const std::size_t data = pos + 512;
    if (data + size > tar.size()) throw Error(what + ": truncated tar archive (entry " + name + ")");
    if (type == 'L') {
      long_name.assign(reinterpret_cast<const char*>(tar.data() + data), strnlen(reinterpret_cast<const char*>(tar.data() + data), size));
    } else if (type == '0' || type == 0) {
      while (name.rfind("./", 0) == 0) name = name.substr(2);
      entries.push_back({name, data, static_cast<std::size_t>(size)});
    }
    pos = data + ((size + 511) / 512) * 512;
  }
  return entries;
}

ImageFolderResult import_image_folder(const fs::path& root, const ImageFolderOptions& options) {
  if (!fs::is_directory(root)) throw Error(root.string() + ": image folder not found");
  std::vector<ImageRef> refs;
  for (const char* split : {"train", "test"}) {
    const fs::path dir = root / split;
    if (!fs::is_directory(dir)) throw Error(root.string() + ": missing " + split + "/ directory (expected " + split + "/<class>/*.jpg|png)");
    for (const auto& cls_entry : fs::directory_iterator(dir)) {
      if (!cls_entry.is_directory()) continue;
      for (const auto& f : fs::directory_iterator(cls_entry.path())) {
        if (!f.is_regular_file() || !is_image_name(f.path().filename().string())) continue;
        fs::path p = f.path();
        refs.push_back(
            {split, cls_entry.path().filename().string(), p.filename().string(), [p] { return read_binary_file(p, limits::kImageFileBytes); }});
      }
    }
  }
  return build(std::move(refs), root.string(), options);
}

ImageFolderResult import_image_folder_tar(const Bytes& tar, const std::string& what, const ImageFolderOptions& options) {
  std::vector<ImageRef> refs;
  for (const TarEntry& e : list_tar(tar, what)) {
    std::string split, cls, file;
    if (!split_path(e.name, split, cls, file)) continue;
    const Bytes* src = &tar;
    refs.push_back({split, cls, file, [src, e] {
                      return Bytes(src->begin() + static_cast<std::ptrdiff_t>(e.offset),
                                   src->begin() + static_cast<std::ptrdiff_t>(e.offset + e.size));
                    }});
  }
  return build(std::move(refs), what, options);
}

}  // namespace evoopt::data
