#include "evoopt/data/split.hpp"

#include <cmath>

#include <torch/torch.h>

#include "evoopt/common/error.hpp"
#include "evoopt/data/checksum.hpp"

namespace evoopt::data {

const char* split_name(Split s) { return s == Split::Train ? "train" : s == Split::Val ? "val" : "test"; }

Split split_from_name(const std::string& name) {
  for (Split s : {Split::Train, Split::Val, Split::Test})
    if (name == split_name(s)) return s;
  throw Error("unknown split '" + name + "' (allowed: train, val, test)");
}

void Splits::set_statistics(std::vector<double> channel_mean, std::vector<double> channel_stddev) {
  if (channel_mean.size() != channel_stddev.size() || channel_mean.empty())
    throw Error("normalisation statistics need one mean and one standard deviation per channel");
  mean = std::move(channel_mean);
  stddev = std::move(channel_stddev);
  const auto c = static_cast<std::int64_t>(mean.size());
  // (x/255 − mean)/std = x · 1/(255·std) − mean/std, computed in float64 then stored as float32.
  std::vector<double> scale(mean.size()), shift(mean.size());
  for (std::size_t i = 0; i < mean.size(); ++i) {
    scale[i] = 1.0 / (255.0 * stddev[i]);
    shift[i] = -mean[i] / stddev[i];
  }
  scale_ = torch::tensor(scale, torch::kFloat64).to(torch::kFloat32).view({1, c, 1, 1});
  shift_ = torch::tensor(shift, torch::kFloat64).to(torch::kFloat32).view({1, c, 1, 1});
}

Splits Splits::to(torch::Device device) const {
  Splits s = *this;
  for (Dataset* d : {&s.train, &s.val, &s.test}) {
    if (d->images.defined()) d->images = d->images.to(device);
    if (d->labels.defined()) d->labels = d->labels.to(device);
    if (d->tokens.defined()) d->tokens = d->tokens.to(device);
  }
  if (scale_.defined()) {
    s.scale_ = scale_.to(device);
    s.shift_ = shift_.to(device);
  }
  return s;
}

torch::Tensor Splits::normalise(const torch::Tensor& images_u8, at::MemoryFormat format) const {
  if (!scale_.defined()) throw Error("normalisation statistics of " + name + " are not set");
  if (images_u8.dim() != 4 || images_u8.size(1) != scale_.size(1))
    throw Error("normalise expects a (batch, " + std::to_string(scale_.size(1)) + ", height, width) batch of " + name);
  auto x = images_u8.to(torch::TensorOptions().dtype(torch::kFloat32), /*non_blocking=*/false, /*copy=*/false, format);
  return x.mul_(scale_).add_(shift_);
}

namespace {
// Data made in memory (tests, user code) has no files to checksum: hash the tensors.
std::string tensor_digest(const DatasetPair& pair) {
  std::string all;
  for (const Dataset* d : {&pair.train, &pair.test}) {
    if (d->tokens.defined()) {
      const auto tok = d->tokens.contiguous();
      all += sha256_hex(tok.data_ptr(), static_cast<std::size_t>(tok.numel()));
    }
    if (!d->images.defined()) continue;
    const auto img = d->images.contiguous();
    const auto lab = d->labels.contiguous();
    all += sha256_hex(img.data_ptr(), static_cast<std::size_t>(img.numel()) * img.element_size());
    all += sha256_hex(lab.data_ptr(), static_cast<std::size_t>(lab.numel()) * lab.element_size());
  }
  return "tensors:" + sha256_hex(all.data(), all.size());
}
}  // namespace

namespace {
Splits text_splits(const DatasetPair& pair, const SplitOptions& options) {
  const std::int64_t n = pair.train.size();
  if (n < 1000) throw Error(pair.name + ": a training stream of " + std::to_string(n) + " tokens is too short (at least 1000)");
  const std::int64_t val = std::min(kTextHeldOutBytes, n / 10);
  const std::int64_t train = n - val;
  Splits s;
  s.name = pair.name;
  s.label = pair.label.empty() ? pair.name : pair.label;
  s.train.tokens = pair.train.tokens.narrow(0, 0, train);
  s.val.tokens = pair.train.tokens.narrow(0, train, val);
  s.test = pair.test;
  s.options = options;
  s.digest = pair.digest.empty() ? tensor_digest(pair) : pair.digest;
  return s;
}
}  // namespace

Splits make_splits(const DatasetPair& pair, const SplitOptions& options) {
  if (pair.train.tokens.defined()) return text_splits(pair, options);
  const std::int64_t n = pair.train.size();
  if (options.val_size < 1 || options.val_size >= n)
    throw Error("validation size " + std::to_string(options.val_size) + " is outside 1.." + std::to_string(n - 1) + " for " + pair.name);
  if (options.train_subset < 0) throw Error("training subset size must be >= 0 (0 = all), got " + std::to_string(options.train_subset));
  Rng rng(derive_seed(options.split_seed, "split/" + pair.name));
  const std::vector<std::int64_t> perm = permutation(n, rng);
  std::vector<std::int64_t> val_idx(perm.begin(), perm.begin() + options.val_size);
  std::vector<std::int64_t> train_idx(perm.begin() + options.val_size, perm.end());
  if (options.train_subset > 0) {
    if (options.train_subset > static_cast<std::int64_t>(train_idx.size()))
      throw Error("training subset " + std::to_string(options.train_subset) + " is larger than the " + std::to_string(train_idx.size()) +
                  " training images of " + pair.name);
    train_idx.resize(static_cast<std::size_t>(options.train_subset));
  }
  // Keep official order within each split (sorting makes the split a set, not a sequence).
  std::sort(val_idx.begin(), val_idx.end());
  std::sort(train_idx.begin(), train_idx.end());
  auto take = [&](const std::vector<std::int64_t>& idx) {
    auto t = torch::tensor(idx, torch::kInt64);
    Dataset d;
    d.images = pair.train.images.index_select(0, t);
    d.labels = pair.train.labels.index_select(0, t);
    return d;
  };
  Splits s;
  s.name = pair.name;
  s.label = pair.label.empty() ? pair.name : pair.label;
  s.classes = pair.classes;
  s.train = take(train_idx);
  s.val = take(val_idx);
  s.test = pair.test;
  s.options = options;
  s.digest = pair.digest.empty() ? tensor_digest(pair) : pair.digest;
  const auto c = s.train.images.size(1);
  // Per-channel statistics in float64 over the training split.
  auto x = s.train.images.to(torch::kFloat64).div_(255.0).transpose(0, 1).reshape({c, -1});
  auto mean = x.mean(1), std = x.std(1, /*unbiased=*/false);
  std::vector<double> channel_mean, channel_stddev;
  for (std::int64_t i = 0; i < c; ++i) {
    channel_mean.push_back(mean[i].item<double>());
    channel_stddev.push_back(std::max(std[i].item<double>(), 1e-6));
  }
  s.set_statistics(std::move(channel_mean), std::move(channel_stddev));
  return s;
}

BatchSampler::BatchSampler(std::int64_t dataset_size, std::int64_t batch_size, std::uint64_t seed)
    : n_(dataset_size), batch_(batch_size), rng_(seed) {
  if (n_ <= 0) throw Error("cannot sample batches from an empty dataset");
  if (batch_ <= 0) throw Error("batch size must be positive, got " + std::to_string(batch_));
  batch_ = std::min(batch_, n_);
  pos_ = static_cast<std::size_t>(n_);  // forces a fresh permutation on the first call
}

torch::Tensor BatchSampler::next() {
  skip(1);
  return torch::from_blob(order_.data() + pos_ - static_cast<std::size_t>(batch_), {batch_}, torch::kInt64).clone();
}

void BatchSampler::skip(std::int64_t batches) {
  for (std::int64_t i = 0; i < batches; ++i) {
    if (pos_ + static_cast<std::size_t>(batch_) > order_.size()) {
      order_ = permutation(n_, rng_);
      pos_ = 0;
    }
    pos_ += static_cast<std::size_t>(batch_);
  }
}

torch::Tensor augment_crop_flip(const torch::Tensor& images_u8, int pad, Rng& rng) {
  const auto b = images_u8.size(0), c = images_u8.size(1), h = images_u8.size(2), w = images_u8.size(3);
  // Per image (in this order): the crop's row and column offsets, then the flip. The crops
  // and flips become two gathers over the padded batch instead of three small tensor
  // operations per image (the same bytes: tested against the per-image loop).
  std::vector<std::int64_t> rows(static_cast<std::size_t>(b * h)), cols(static_cast<std::size_t>(b * w));
  for (std::int64_t i = 0; i < b; ++i) {
    const auto dy = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(2 * pad + 1)));
    const auto dx = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(2 * pad + 1)));
    const bool flip = rng.bernoulli(0.5);
    for (std::int64_t y = 0; y < h; ++y) rows[static_cast<std::size_t>(i * h + y)] = dy + y;
    for (std::int64_t x = 0; x < w; ++x) cols[static_cast<std::size_t>(i * w + x)] = dx + (flip ? w - 1 - x : x);
  }
  const auto padded = torch::constant_pad_nd(images_u8, {pad, pad, pad, pad}, 0);
  const auto on = torch::TensorOptions().dtype(torch::kInt64).device(images_u8.device());
  const auto row_index = torch::from_blob(rows.data(), {b, 1, h, 1}, torch::kInt64).to(on, /*non_blocking=*/false, /*copy=*/true);
  const auto col_index = torch::from_blob(cols.data(), {b, 1, 1, w}, torch::kInt64).to(on, /*non_blocking=*/false, /*copy=*/true);
  const auto picked_rows = padded.gather(2, row_index.expand({b, c, h, padded.size(3)}));
  return picked_rows.gather(3, col_index.expand({b, c, h, w}));
}

}  // namespace evoopt::data
