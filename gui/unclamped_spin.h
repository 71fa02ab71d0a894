// Unclamped<QSpinBox> / Unclamped<QDoubleSpinBox>: a spin box whose range is the validation's bounds
// (docs/scenario-format.md, "Bounds") and that never silently clamps what it is given. A value from
// a file outside the range (vocab_size 2147483647, a negative size, NaN) is kept and shown as it
// is — validation then marks the field — until the user edits the field. GUI thread only.
#pragma once

#include <QKeyEvent>
#include <QLineEdit>
#include <QLocale>
#include <cmath>
#include <optional>
#include <utility>

namespace eellm::gui {

template <typename Spin>
class Unclamped : public Spin {
 public:
  using Value = decltype(std::declval<Spin>().value());
  explicit Unclamped(QWidget* parent = nullptr) : Spin(parent) {
    // Any new value (typed, stepped, or set by a caller) replaces the raw one.
    QObject::connect(this, &Spin::valueChanged, this, [this] {
      if (!setting_) raw_.reset();
    });
  }

  // Shows v; one outside the range is kept as it is (raw) instead of clamped.
  void setRawValue(Value v) {
    const bool inside = v >= this->minimum() && v <= this->maximum();  // false for NaN
    raw_.reset();
    if (inside) {
      this->setValue(v);
      return;
    }
    setting_ = true;
    this->setValue(v < this->minimum() ? this->minimum() : this->maximum());
    setting_ = false;
    raw_ = v;
    this->lineEdit()->setText(this->textFromValue(this->value()));
  }
  // The value the field holds: the raw one from the file until the user edits the field.
  Value rawValue() const { return raw_ ? *raw_ : this->value(); }
  bool holdsRaw() const { return raw_.has_value(); }

  void stepBy(int steps) override {
    forget();
    Spin::stepBy(steps);
  }

 protected:
  QString textFromValue(Value v) const override {
    if (!raw_) return Spin::textFromValue(v);
    if constexpr (std::is_floating_point_v<Value>) {
      return std::isnan(*raw_) ? QStringLiteral("nan") : QString::number(*raw_, 'g', 17);
    } else {
      return QString::number(*raw_);
    }
  }
  void keyPressEvent(QKeyEvent* event) override {  // typing replaces the raw value as a whole
    if (!event->text().isEmpty() || event->key() == Qt::Key_Backspace || event->key() == Qt::Key_Delete) forget();
    Spin::keyPressEvent(event);
  }

 private:
  // The user edits the field: the raw value goes, its text selected so that what is typed replaces it;
  // valueChanged tells the form (which re-validates) that the field now holds value().
  void forget() {
    if (!raw_) return;
    raw_.reset();
    this->lineEdit()->setText(Spin::textFromValue(this->value()));
    this->lineEdit()->selectAll();
    emit this->valueChanged(this->value());
  }
  std::optional<Value> raw_;
  bool setting_ = false;
};

}  // namespace eellm::gui
