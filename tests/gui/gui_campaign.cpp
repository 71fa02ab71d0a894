// [reliability] The GUI's hostile-file campaign (offscreen): mutated scenario files, cluster
// profiles and traces, and special files (FIFO, /dev/zero, /dev/urandom, a directory, a symlink loop,
// a 300-character name), each opened through one of the GUI's loading paths:
//   scenario  MainWindow::openScenario
//   profile   the form's cluster-profile box (ScenarioForm loads it), after opening tiny-ee
//   trace     MainWindow::openTrace
//   overlay   MainWindow::overlayMeasuredTrace, after opening tiny-ee-pp2
// and classified: accepted (opened, no error), form (opened with the invalid fields marked), named
// (an error naming the file or a field), unnamed (an error naming neither: a bug) — plus, from the
// script that runs one input per process (scripts/gui-campaign.sh), crashes and hangs.
//
//   gui_campaign generate DIR SEED COUNT   writes the inputs and DIR/inputs.tsv (kind, class, path)
//   gui_campaign open LIST FIRST N         opens inputs FIRST..FIRST+N-1 of LIST, one line each
//   gui_campaign selftest SEED COUNT       both in one process; exit 1 on an unnamed error or memory
//                                          beyond the bound (the fixed-seed ctest slice, label gui)
#include <sys/stat.h>
#include <unistd.h>

#include <QApplication>
#include <QComboBox>
#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTextStream>
#include <cstdio>
#include <map>
#include <random>

#include "gui/main_window.h"
#include "gui/scenario_form.h"

using namespace eellm::gui;

namespace {

constexpr qint64 kMaxRssMiB = 512;  // one input's memory bound (a 10^6-event trace: 170 MiB; it was 894 MiB)

struct Input {
  QString kind, cls, path;
};

QByteArray read_all(const QString& path) {
  QFile f(path);
  return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

bool write_file(const QString& path, const QByteArray& bytes) {
  QFile f(path);
  return f.open(QIODevice::WriteOnly | QIODevice::Truncate) && f.write(bytes) == bytes.size();
}

QList<QByteArray> corpus(const QString& dir, const QString& pattern) {
  QList<QByteArray> out;
  for (const QString& f : QDir(dir).entryList({pattern}, QDir::Files, QDir::Name)) out << read_all(dir + "/" + f);
  return out;
}

class Mutator {
 public:
  explicit Mutator(quint64 seed) : rng_(seed) {}
  int pick(int n) { return static_cast<int>(std::uniform_int_distribution<int>(0, n - 1)(rng_)); }
  template <typename T>
  const T& any(const QList<T>& v) {
    return v[pick(static_cast<int>(v.size()))];
  }

  // One YAML mutation: an extreme value for a key, a line dropped or repeated, truncation, byte
  // flips, invalid UTF-8, deep nesting, a key flood or an alias fan-out.
  QByteArray yaml(QByteArray text, QString* cls) {
    static const QList<QByteArray> extremes = {
        "0",          "-1",     "-0",     "2147483647", "2147483648", "-2147483648", "9223372036854775807",
        "1e308",      "1e309",  "5e-324", ".nan",       ".inf",       "-.inf",       "1073741824",
        "65536",      "4097",   "abc",    "\"\"",       "[1, 2]",     "{a: 1}",      "~",
        "0x7fffffff", "1e-300", "-5",     "16777217"};
    QList<QByteArray> lines = text.split('\n');
    switch (pick(9)) {
      case 0:
      case 1:
      case 2: {  // a value replaced (the most useful mutation: fields the form shows)
        *cls = QStringLiteral("value");
        for (int tries = 0; tries < 20; ++tries) {
          QByteArray& l = lines[pick(static_cast<int>(lines.size()))];
          const int colon = l.indexOf(": ");
          if (colon < 0 || l.trimmed().startsWith('#')) continue;
          l = l.left(colon + 2) + any(extremes);
          break;
        }
        return lines.join('\n');
      }
      case 3:
        *cls = QStringLiteral("line");
        if (pick(2) == 0)
          lines.removeAt(pick(static_cast<int>(lines.size())));
        else
          lines.insert(pick(static_cast<int>(lines.size())), any(lines));
        return lines.join('\n');
      case 4:
        *cls = QStringLiteral("truncated");
        return text.left(pick(static_cast<int>(text.size()) + 1));
      case 5:
        *cls = QStringLiteral("bytes");
        for (int i = 0, n = 1 + pick(8); i < n && !text.isEmpty(); ++i)
          text[pick(static_cast<int>(text.size()))] = static_cast<char>(pick(256));
        return text;
      case 6:
        *cls = QStringLiteral("utf8");
        return text.replace("name: ", "name: \xff\xfe\xc3");
      case 7: {
        *cls = QStringLiteral("deep");
        const int depth = QList<int>{100, 1000, 5000, 100000}[pick(4)];
        return text + "extra: " + QByteArray(depth, '[') + QByteArray(depth, ']') + "\n";
      }
      default:
        return flood(text, cls);
    }
  }

  // 100,000 keys in a section, or an alias fan-out (a "billion laughs").
  QByteArray flood(QByteArray text, QString* cls) {
    if (pick(2) == 0) {
      *cls = QStringLiteral("keys");
      QByteArray keys = "flood:\n";
      for (int i = 0; i < 100000; ++i) keys += "  k" + QByteArray::number(i) + ": 1\n";
      return text + keys;
    }
    *cls = QStringLiteral("aliases");
    QByteArray a = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
    for (int i = 1; i < 12; ++i) {
      const QByteArray prev = "*a" + QByteArray::number(i - 1);
      a += "a" + QByteArray::number(i) + ": &a" + QByteArray::number(i) + " [" + prev;
      for (int j = 1; j < 10; ++j) a += ", " + prev;
      a += "]\n";
    }
    return text + "model:\n  " + a.replace("\n", "\n  ").trimmed() + "\n";
  }

  // One trace mutation: pids 10^8 / -1, negative / huge / non-finite times, wrong types, deep
  // nesting, key floods, truncation and byte flips; `big`: 10^6 events.
  QByteArray trace(QByteArray text, QString* cls, bool big) {
    static const QList<QByteArray> values = {"100000000", "-1", "-5", "1e308",      "1e400", "-1e400", "NaN",   "\"x\"",
                                             "null",      "[]", "{}", "2147483648", "0",     "-0.5",   "1e-320"};
    static const QList<QByteArray> keys = {"\"pid\":", "\"tid\":", "\"ts\":", "\"dur\":", "\"mb\":", "\"chunk\":"};
    switch (big ? 6 : pick(6)) {
      case 0:
      case 1:
      case 2: {
        *cls = QStringLiteral("value");
        const QByteArray& key = any(keys);
        int at = text.indexOf(key, pick(static_cast<int>(text.size())));
        if (at < 0) at = text.indexOf(key);
        if (at < 0) return text;
        const int from = at + static_cast<int>(key.size());
        int to = from;
        while (to < text.size() && text[to] != ',' && text[to] != '}') ++to;
        return text.left(from) + any(values) + text.mid(to);
      }
      case 3:
        *cls = QStringLiteral("truncated");
        return text.left(pick(static_cast<int>(text.size()) + 1));
      case 4:
        *cls = QStringLiteral("bytes");
        for (int i = 0, n = 1 + pick(8); i < n && !text.isEmpty(); ++i)
          text[pick(static_cast<int>(text.size()))] = static_cast<char>(pick(256));
        return text;
      case 5: {
        const int d = QList<int>{1000, 100000}[pick(2)];
        if (pick(2) == 0) {
          *cls = QStringLiteral("deep");
          return "{\"traceEvents\":" + QByteArray(d, '[') + QByteArray(d, ']') + "}";
        }
        *cls = QStringLiteral("keys");
        QByteArray ev = "{\"traceEvents\":[{\"ph\":\"X\",\"name\":\"F0\",\"pid\":0,\"tid\":0,\"ts\":0,\"dur\":1";
        for (int i = 0; i < d; ++i) ev += ",\"k" + QByteArray::number(i) + "\":1";
        return ev + "}]}";
      }
      default: {
        *cls = QStringLiteral("events");  // 10^6 complete events on two ranks
        QByteArray ev = "{\"traceEvents\":[";
        ev.reserve(80 * 1000000);
        for (int i = 0; i < 1000000; ++i)
          ev += (i ? ",{" : "{") + QByteArray("\"ph\":\"X\",\"name\":\"F0\",\"pid\":") + QByteArray::number(i % 2) +
                ",\"tid\":0,\"ts\":" + QByteArray::number(i) + ",\"dur\":1}";
        return ev + "]}";
      }
    }
  }

 private:
  std::mt19937_64 rng_;
};

// The special files every kind is also tried with.
QList<QPair<QString, QString>> special_files(const QString& dir) {
  QList<QPair<QString, QString>> out;
  const QString fifo = dir + "/fifo";
  if (::mkfifo(fifo.toLocal8Bit().constData(), 0600) == 0) out << qMakePair(QStringLiteral("fifo"), fifo);
  QDir(dir).mkdir(QStringLiteral("a-directory.yaml"));
  out << qMakePair(QStringLiteral("directory"), dir + "/a-directory.yaml");
  const QString loop = dir + "/loop.yaml";
  if (::symlink(loop.toLocal8Bit().constData(), loop.toLocal8Bit().constData()) == 0)
    out << qMakePair(QStringLiteral("symlink-loop"), loop);
  out << qMakePair(QStringLiteral("dev-zero"), QStringLiteral("/dev/zero"))
      << qMakePair(QStringLiteral("dev-urandom"), QStringLiteral("/dev/urandom"))
      << qMakePair(QStringLiteral("long-name"), dir + "/" + QString(300, QLatin1Char('n')) + ".yaml")
      << qMakePair(QStringLiteral("missing"), dir + "/no-such-file.yaml");
  write_file(dir + "/empty.yaml", {});
  out << qMakePair(QStringLiteral("empty"), dir + "/empty.yaml");
  return out;
}

// Writes `count` mutated inputs (and the special files for each kind) into dir; returns the list.
QList<Input> generate(const QString& dir, quint64 seed, int count) {
  const QString src = QStringLiteral(EELLM_SOURCE_DIR);
  const QList<QByteArray> scenarios = corpus(src + "/scenarios", QStringLiteral("*.yaml"));
  const QList<QByteArray> clusters = corpus(src + "/scenarios/clusters", QStringLiteral("*.yaml"));
  const QList<QByteArray> traces = corpus(src + "/tests/fuzz/corpus/trace", QStringLiteral("*.json"));
  Mutator m(seed);
  QList<Input> out;
  for (const auto& [cls, path] : special_files(dir))
    for (const char* kind : {"scenario", "profile", "trace", "overlay"}) out << Input{kind, cls, path};
  // A reader that throws (EELLM_FAULT_INJECT=reader) on a valid file of each kind.
  out << Input{"scenario", "fault", src + "/scenarios/tiny-ee.yaml"}
      << Input{"profile", "fault", src + "/scenarios/clusters/local-cpu.yaml"}
      << Input{"trace", "fault", src + "/tests/fuzz/corpus/trace/tiny-ee.json"}
      << Input{"overlay", "fault", src + "/tests/fuzz/corpus/trace/tiny-pp2.json"};
  for (int i = 0; i < count; ++i) {
    const int k = i % 4;
    Input in;
    in.kind = QStringList{"scenario", "profile", "trace", "overlay"}[k];
    QByteArray bytes;
    if (k == 0) {
      bytes = m.yaml(m.any(scenarios), &in.cls);
    } else if (k == 1) {
      bytes = m.yaml(m.any(clusters), &in.cls);
    } else {
      bytes = m.trace(m.any(traces), &in.cls, /*big=*/i % 97 == 2);  // inputs 2, 99, 196...: 10^6 events
    }
    in.path = QStringLiteral("%1/%2-%3-%4.%5")
                  .arg(dir)
                  .arg(i, 5, 10, QLatin1Char('0'))
                  .arg(in.kind, in.cls, k < 2 ? "yaml" : "json");
    if (!write_file(in.path, bytes)) continue;
    out << in;
  }
  QFile list(dir + "/inputs.tsv");
  if (list.open(QIODevice::WriteOnly)) {
    QTextStream ts(&list);
    for (const Input& in : out) ts << in.kind << '\t' << in.cls << '\t' << in.path << '\n';
  }
  return out;
}

qint64 rss_peak_mib() {
  QFile f(QStringLiteral("/proc/self/status"));
  if (!f.open(QIODevice::ReadOnly)) return 0;
  for (const QByteArray& l : f.readAll().split('\n'))
    if (l.startsWith("VmHWM:")) return l.mid(6).trimmed().split(' ').front().toLongLong() / 1024;
  return 0;
}

// Opens one input through its loading path; the outcome and the message shown.
QPair<QString, QString> open_one(const Input& in) {
  MainWindow w;
  QStringList errors;
  w.setErrorHook([&errors](const QString&, const QString& m) { errors << m; });
  bool ok = false;
  struct Fault {  // the reader throws while the input is opened (not during the setup)
    explicit Fault(bool on) : on_(on) {
      if (on_) qputenv("EELLM_FAULT_INJECT", "reader");
    }
    ~Fault() {
      if (on_) qunsetenv("EELLM_FAULT_INJECT");
    }
    bool on_;
  };
  const bool fault = in.cls == QLatin1String("fault");
  if (in.kind == QLatin1String("scenario")) {
    Fault f(fault);
    ok = w.openScenario(in.path);
  } else if (in.kind == QLatin1String("profile")) {
    if (!w.openScenario(QStringLiteral("tiny-ee"))) return {QStringLiteral("setup-failed"), w.lastError()};
    auto* box = qobject_cast<QComboBox*>(w.form()->editor(QStringLiteral("cluster.profile")));
    box->addItem(in.path);
    {
      Fault f(fault);
      box->setCurrentText(in.path);
    }
    const QString err = w.form()->errorText(QStringLiteral("cluster.profile"));
    if (!err.isEmpty()) errors << err;
    ok = err.isEmpty() && w.simulateNow();  // the profile's figures validated with the scenario
  } else if (in.kind == QLatin1String("trace")) {
    Fault f(fault);
    ok = w.openTrace(in.path);
  } else {
    if (!w.openScenario(QStringLiteral("tiny-ee-pp2"))) return {QStringLiteral("setup-failed"), w.lastError()};
    const int before = w.errorCount();
    Fault f(fault);
    ok = w.overlayMeasuredTrace(in.path) && w.errorCount() == before;
  }
  const QString form = w.form()->errorSummary();  // the invalid fields, marked in the form
  if (errors.isEmpty() && !form.isEmpty()) return {QStringLiteral("form"), form};
  if (errors.isEmpty()) return {ok ? QStringLiteral("accepted") : QStringLiteral("unnamed"), QString()};
  const QString msg = errors.last();
  const QString name = QFileInfo(in.path).fileName();
  const bool named =
      msg.contains(in.path) || msg.contains(name.left(200)) || (fault && msg.contains(QLatin1String("injected fault")));
  return {named ? QStringLiteral("named") : QStringLiteral("unnamed"), msg};
}

// Opens inputs[first, first+n) printing one line each; the outcome counts.
std::map<QString, int> open_range(const QList<Input>& inputs, int first, int n) {
  std::map<QString, int> counts;
  for (int i = first; i < std::min<int>(static_cast<int>(inputs.size()), first + n); ++i) {
    QElapsedTimer t;
    t.start();
    const auto [outcome, msg] = open_one(inputs[i]);
    const qint64 rss = rss_peak_mib();
    const QString shown = rss > kMaxRssMiB ? QStringLiteral("memory") : outcome;
    ++counts[shown];
    std::printf("%d\t%s\t%s\t%s\t%lld ms\t%lld MiB\t%s\n", i, qPrintable(inputs[i].kind), qPrintable(inputs[i].cls),
                qPrintable(shown), static_cast<long long>(t.elapsed()), static_cast<long long>(rss),
                qPrintable(msg.left(160).replace(QLatin1Char('\n'), QLatin1Char(' '))));
    std::fflush(stdout);
  }
  return counts;
}

QList<Input> read_list(const QString& path) {
  QList<Input> out;
  for (const QByteArray& l : read_all(path).split('\n')) {
    const QList<QByteArray> f = l.split('\t');
    if (f.size() == 3) out << Input{QString::fromUtf8(f[0]), QString::fromUtf8(f[1]), QString::fromUtf8(f[2])};
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  qputenv("QT_QPA_PLATFORM", "offscreen");
  QApplication app(argc, argv);
  QStandardPaths::setTestModeEnabled(true);  // recent files go to a test location
  const QStringList a = app.arguments();
  if (a.size() == 5 && a[1] == QLatin1String("generate")) {
    return generate(a[2], a[3].toULongLong(), a[4].toInt()).isEmpty() ? 1 : 0;
  }
  if (a.size() == 5 && a[1] == QLatin1String("open")) {
    open_range(read_list(a[2]), a[3].toInt(), a[4].toInt());
    return 0;
  }
  if (a.size() == 4 && a[1] == QLatin1String("selftest")) {
    QTemporaryDir dir;
    const QList<Input> inputs = generate(dir.path(), a[2].toULongLong(), a[3].toInt());
    const std::map<QString, int> counts = open_range(inputs, 0, static_cast<int>(inputs.size()));
    for (const auto& [k, n] : counts) std::printf("%s: %d\n", qPrintable(k), n);
    const bool bad = counts.count(QStringLiteral("unnamed")) || counts.count(QStringLiteral("memory")) ||
                     counts.count(QStringLiteral("setup-failed"));
    return bad || inputs.size() < a[3].toInt() ? 1 : 0;
  }
  std::fprintf(stderr, "usage: gui_campaign generate DIR SEED COUNT | open LIST FIRST N | selftest SEED COUNT\n");
  return 2;
}
