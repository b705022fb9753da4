// detect: MgII absorbers in spectra given as NumPy .npy files, with mgfast's C++ API.
//
//   detect --model DIR --flux flux.npy [--wave wave.npy] [--err err.npy | --ivar ivar.npy]
//          [--z-em z_em.npy] [--not-normalised] [--threshold P] [--threads N] [--out rows.csv]
//
// flux, err, ivar: float32 (N, n_pix); wave: float64 (n_pix,) or (N, n_pix) in vacuum Å (none:
// the spectra are on mgfast's grid); z_em: float64 (N,). Writes one CSV row per spectrum with
// the columns of mgfast's catalogues (floats with enough digits to read back every bit).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "mgfast/detector.hpp"

namespace {

// A little-endian, C-order .npy array of float32 ('<f4') or float64 ('<f8'), version 1-3.
struct Npy {
  std::vector<std::int64_t> shape;
  std::vector<float> f4;
  std::vector<double> f8;
};

Npy read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot be opened");
  char magic[8];
  in.read(magic, 8);
  if (!in || std::memcmp(magic, "\x93NUMPY", 6) != 0) throw std::runtime_error(path + ": not .npy");
  std::uint32_t header_len = 0;
  if (magic[6] == 1) {
    unsigned char b[2];
    in.read(reinterpret_cast<char*>(b), 2);
    header_len = b[0] | (b[1] << 8);
  } else {
    unsigned char b[4];
    in.read(reinterpret_cast<char*>(b), 4);
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (std::uint32_t(b[3]) << 24);
  }
  std::string h(header_len, '\0');
  in.read(&h[0], header_len);
  if (h.find("'fortran_order': False") == std::string::npos)
    throw std::runtime_error(path + ": only C-order arrays are read");
  const bool f4 = h.find("'<f4'") != std::string::npos;
  if (!f4 && h.find("'<f8'") == std::string::npos)
    throw std::runtime_error(path + ": only float32 ('<f4') and float64 ('<f8') are read");
  Npy a;
  const std::size_t open = h.find("'shape': ("), close = h.find(')', open);
  if (open == std::string::npos || close == std::string::npos)
    throw std::runtime_error(path + ": no shape in the header");
  std::string dims = h.substr(open + 10, close - open - 10);
  std::int64_t count = 1;
  for (std::size_t p = 0; p < dims.size();) {
    const std::size_t q = dims.find(',', p);
    const std::string tok = dims.substr(p, q == std::string::npos ? std::string::npos : q - p);
    if (tok.find_first_of("0123456789") != std::string::npos) {
      a.shape.push_back(std::stoll(tok));
      count *= a.shape.back();
    }
    if (q == std::string::npos) break;
    p = q + 1;
  }
  if (f4) {
    a.f4.resize(static_cast<std::size_t>(count));
    in.read(reinterpret_cast<char*>(a.f4.data()), count * 4);
  } else {
    a.f8.resize(static_cast<std::size_t>(count));
    in.read(reinterpret_cast<char*>(a.f8.data()), count * 8);
  }
  if (!in) throw std::runtime_error(path + ": truncated data");
  return a;
}

std::vector<float> as_f4(const Npy& a) {
  return a.f4.empty() ? std::vector<float>(a.f8.begin(), a.f8.end()) : a.f4;
}
std::vector<double> as_f8(const Npy& a) {
  return a.f8.empty() ? std::vector<double>(a.f4.begin(), a.f4.end()) : a.f8;
}

// float32 and float64 as text that reads back to the same bits ("nan" for NaN).
std::string num(double v, int digits) {
  if (std::isnan(v)) return "nan";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

int usage() {
  std::cerr << "usage: detect --model DIR --flux flux.npy [--wave wave.npy] [--err err.npy | "
               "--ivar ivar.npy] [--z-em z_em.npy] [--not-normalised] [--threshold P] "
               "[--threads N] [--out rows.csv]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model, flux_path, wave_path, err_path, ivar_path, zem_path, out_path;
  mgfast::DetectorOptions opt;
  bool normalised = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + ": needs a value");
      return argv[++i];
    };
    try {
      if (a == "--model")
        model = value();
      else if (a == "--flux")
        flux_path = value();
      else if (a == "--wave")
        wave_path = value();
      else if (a == "--err")
        err_path = value();
      else if (a == "--ivar")
        ivar_path = value();
      else if (a == "--z-em")
        zem_path = value();
      else if (a == "--out")
        out_path = value();
      else if (a == "--threshold")
        opt.threshold = std::stod(value());
      else if (a == "--threads")
        opt.threads = std::stoi(value());
      else if (a == "--not-normalised")
        normalised = false;
      else
        return usage();
    } catch (const std::exception& e) {
      std::cerr << "detect: " << e.what() << "\n";
      return usage();
    }
  }
  if (model.empty() || flux_path.empty()) return usage();
  try {
    mgfast::Detector det(model, opt);
    const Npy flux = read_npy(flux_path);
    if (flux.shape.size() != 2) throw std::runtime_error("flux: expected a 2-D array (N, n_pix)");
    const std::vector<float> f = as_f4(flux);
    std::vector<double> wave, zem;
    std::vector<float> err, ivar;
    mgfast::Spectra s;
    s.n = flux.shape[0];
    s.n_pix = static_cast<int>(flux.shape[1]);
    s.flux = f.data();
    s.normalised = normalised;
    if (!wave_path.empty()) {
      const Npy w = read_npy(wave_path);
      wave = as_f8(w);
      s.wave = wave.data();
      s.wave_per_spectrum = w.shape.size() == 2;
    }
    if (!err_path.empty()) err = as_f4(read_npy(err_path)), s.err = err.data();
    if (!ivar_path.empty()) ivar = as_f4(read_npy(ivar_path)), s.ivar = ivar.data();
    if (!zem_path.empty()) zem = as_f8(read_npy(zem_path)), s.z_em = zem.data();
    for (const auto* v : {&err, &ivar})
      if (!v->empty() && std::int64_t(v->size()) != s.n * s.n_pix)
        throw std::runtime_error("err/ivar: not the shape of flux");
    if (!zem.empty() && std::int64_t(zem.size()) != s.n)
      throw std::runtime_error("z_em: expected one value per spectrum");

    const mgfast::Detections res = det.detect(s);

    std::ofstream file;
    if (!out_path.empty()) file.open(out_path);
    std::ostream& out = out_path.empty() ? std::cout : file;
    out << "probability,detected,lambda2796,z_abs,z_em,ew2796,ew2796_err,ew2803,ew2803_err,snr,"
           "flags,masked_fraction";
    for (const char* reason : mgfast::kMaskReasonNames) out << ",masked_" << reason;
    out << '\n';
    for (const mgfast::Detection& d : res.rows) {
      out << num(d.probability, 9) << ',' << (d.detected ? 1 : 0) << ',' << num(d.lambda2796, 17)
          << ',' << num(d.z_abs, 17) << ',' << num(d.z_em, 17) << ',' << num(d.ew2796, 9) << ','
          << num(d.ew2796_err, 9) << ',' << num(d.ew2803, 9) << ',' << num(d.ew2803_err, 9) << ','
          << num(d.snr, 9) << ',' << d.flags << ',' << num(d.masked_fraction, 9);
      for (const float f : d.masked_by) out << ',' << num(f, 9);
      out << '\n';
    }
    std::size_t found = 0;
    for (const mgfast::Detection& d : res.rows) found += d.detected;
    std::cerr << "mgfast " << mgfast::version() << ", model " << res.model << " ("
              << det.model().architecture << ", threshold " << res.threshold << "): " << found
              << " of " << res.rows.size() << " spectra with MgII\n";
  } catch (const std::exception& e) {
    std::cerr << "detect: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
