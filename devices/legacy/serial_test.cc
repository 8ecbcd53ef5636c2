#include "devices/legacy/serial.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace ioasis::devices {
namespace {

constexpr uint64_t kThr = 0, kIer = 1, kIir = 2, kFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6,
                   kScr = 7;

class RecordingLine : public IrqLine {
 public:
  void set_level(bool asserted) override { levels.push_back(asserted); }
  bool level() const { return !levels.empty() && levels.back(); }
  std::vector<bool> levels;
};

class StringOutput : public SerialOutput {
 public:
  void write(std::span<const uint8_t> bytes) override { text.append(bytes.begin(), bytes.end()); }
  std::string text;
};

class SerialTest : public ::testing::Test {
 protected:
  uint8_t in(uint64_t port) {
    uint8_t v = 0;
    uart.read(port, std::span(&v, 1));
    return v;
  }
  void out(uint64_t port, uint8_t v) { uart.write(port, std::span<const uint8_t>(&v, 1)); }
  void feed(const std::string& s) {
    uart.enqueue_input(std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  }

  std::shared_ptr<RecordingLine> line = std::make_shared<RecordingLine>();
  std::shared_ptr<StringOutput> output = std::make_shared<StringOutput>();
  Serial uart{line, output};
};

TEST_F(SerialTest, ThrWritesReachTheOutput) {
  for (char c : std::string("hi\n")) out(kThr, static_cast<uint8_t>(c));
  EXPECT_EQ(output->text, "hi\n");
  EXPECT_EQ(in(kLsr)&0x60, 0x60);  // THRE and TEMT: a polled guest may always send
}

TEST_F(SerialTest, DlabSwitchesDataAndIerToTheDivisorLatch) {
  out(kIer, 0x05);
  out(kLcr, 0x83);
  out(kThr, 0x0c);  // DLL
  out(kIer, 0x00);  // DLM
  EXPECT_EQ(in(kThr), 0x0c);
  EXPECT_EQ(in(kIer), 0x00);
  EXPECT_TRUE(output->text.empty());
  out(kLcr, 0x03);
  EXPECT_EQ(in(kIer), 0x05);
  EXPECT_EQ(in(kLcr), 0x03);
}

TEST_F(SerialTest, IerKeepsOnlyTheFourInterruptEnables) {
  out(kIer, 0xff);
  EXPECT_EQ(in(kIer), 0x0f);
}

TEST_F(SerialTest, ScratchRegisterHoldsItsValue) {
  out(kScr, 0xa5);
  EXPECT_EQ(in(kScr), 0xa5);
  out(kScr, 0x5a);
  EXPECT_EQ(in(kScr), 0x5a);
}

TEST_F(SerialTest, LoopbackMirrorsModemControlIntoModemStatus) {
  out(kMcr, 0x10 | 0x0a);  // loop, OUT2, RTS: Linux's 8250 probe expects DCD|CTS
  EXPECT_EQ(in(kMsr)&0xf0, 0x90);
  out(kMcr, 0x10 | 0x05);  // DTR, OUT1 -> DSR, RI
  EXPECT_EQ(in(kMsr)&0xf0, 0x60);
  out(kMcr, 0x00);
  EXPECT_EQ(in(kMsr)&0xf0, 0xb0);  // outside loopback the peer is always ready
}

TEST_F(SerialTest, LoopbackMsrReportsDeltasOnceAndTrailingEdgeOfRi) {
  out(kMcr, 0x10);
  in(kMsr);
  out(kMcr, 0x10 | 0x04);  // RI rises: no TERI
  EXPECT_EQ(in(kMsr)&0x0f, 0x00);
  out(kMcr, 0x10 | 0x02);  // RI falls, CTS rises
  EXPECT_EQ(in(kMsr)&0x0f, 0x05);
  EXPECT_EQ(in(kMsr)&0x0f, 0x00);
}

TEST_F(SerialTest, LoopbackSendsTransmittedBytesToTheReceiver) {
  out(kMcr, 0x10);
  out(kThr, 'x');
  EXPECT_TRUE(output->text.empty());
  EXPECT_EQ(in(kLsr)&0x01, 0x01);
  EXPECT_EQ(in(kThr), 'x');
  EXPECT_EQ(in(kLsr)&0x01, 0x00);
}

TEST_F(SerialTest, IirReportsFifoBitsWhenFifosAreEnabled) {
  EXPECT_EQ(in(kIir), 0x01);
  out(kFcr, 0x01);
  EXPECT_EQ(in(kIir), 0xc1);
  out(kFcr, 0x00);
  EXPECT_EQ(in(kIir), 0x01);
}

TEST_F(SerialTest, FcrClearRxEmptiesTheFifo) {
  out(kFcr, 0x01);
  feed("abc");
  out(kFcr, 0x03);
  EXPECT_EQ(in(kLsr)&0x01, 0);
}

TEST_F(SerialTest, ReceivedInputRaisesRxInterruptUntilDrained) {
  out(kIer, 0x01);
  EXPECT_FALSE(line->level());
  feed("ok");
  EXPECT_TRUE(line->level());
  EXPECT_EQ(in(kIir)&0x0f, 0x04);
  EXPECT_EQ(in(kThr), 'o');
  EXPECT_TRUE(line->level());
  EXPECT_EQ(in(kThr), 'k');
  EXPECT_FALSE(line->level());
  EXPECT_EQ(in(kIir)&0x0f, 0x01);
}

TEST_F(SerialTest, InputWithoutRxEnableSetsDataReadyButNoInterrupt) {
  feed("z");
  EXPECT_EQ(in(kLsr)&0x01, 0x01);
  EXPECT_TRUE(line->levels.empty());
}

TEST_F(SerialTest, EnqueueStopsAtFifoCapacity) {
  std::string big(Serial::kRxFifoCapacity + 10, 'a');
  EXPECT_EQ(uart.enqueue_input(std::span(reinterpret_cast<const uint8_t*>(big.data()), big.size())),
            Serial::kRxFifoCapacity);
  EXPECT_EQ(uart.rx_space(), 0u);
  in(kThr);
  EXPECT_EQ(uart.rx_space(), 1u);
}

TEST_F(SerialTest, EnablingThrEmptyInterruptRaisesItAtOnceAndIirReadAcknowledges) {
  out(kIer, 0x02);
  EXPECT_TRUE(line->level());
  EXPECT_EQ(in(kIir)&0x0f, 0x02);
  EXPECT_FALSE(line->level());
  EXPECT_EQ(in(kIir)&0x0f, 0x01);
  // Re-enabling while THR is empty raises it again (Linux's UART_BUG_THRE check).
  out(kIer, 0x00);
  out(kIer, 0x02);
  EXPECT_EQ(in(kIir)&0x0f, 0x02);
}

TEST_F(SerialTest, EachTransmittedByteRaisesThrEmptyAgain) {
  out(kIer, 0x02);
  in(kIir);
  EXPECT_FALSE(line->level());
  out(kThr, 'a');
  EXPECT_TRUE(line->level());
  EXPECT_EQ(in(kIir)&0x0f, 0x02);
  EXPECT_FALSE(line->level());
}

TEST_F(SerialTest, RxDataOutranksThrEmptyAndLineStatusOutranksBoth) {
  out(kIer, 0x07);
  out(kMcr, 0x10);
  std::string fill(Serial::kRxFifoCapacity, 'q');
  for (char c : fill) out(kThr, static_cast<uint8_t>(c));
  EXPECT_EQ(in(kIir)&0x0f, 0x04);  // FIFO full, no overrun yet
  out(kThr, 'x');                  // overruns
  EXPECT_EQ(in(kIir)&0x0f, 0x06);
  EXPECT_EQ(in(kLsr)&0x02, 0x02);  // reading LSR clears OE
  EXPECT_EQ(in(kIir)&0x0f, 0x04);
  for (size_t i = 0; i < fill.size(); ++i) in(kThr);
  EXPECT_EQ(in(kIir)&0x0f, 0x02);
  EXPECT_EQ(in(kIir)&0x0f, 0x01);
  EXPECT_FALSE(line->level());
}

TEST_F(SerialTest, ModemStatusInterruptFollowsDeltasWhenEnabled) {
  out(kIer, 0x08);
  out(kMcr, 0x10);  // entering loopback drops DCD/DSR/CTS: deltas
  EXPECT_TRUE(line->level());
  EXPECT_EQ(in(kIir)&0x0f, 0x00);
  in(kMsr);
  EXPECT_FALSE(line->level());
}

TEST_F(SerialTest, IrqLineChangesOnlyOnTransitions) {
  out(kIer, 0x01);
  feed("a");
  feed("b");
  in(kThr);
  in(kThr);
  EXPECT_EQ(line->levels, (std::vector<bool>{true, false}));
}

// The order of accesses Linux's 8250 autoconfig makes; each decision it takes must land on
// "16550A" for the console to get a FIFO and interrupts.
TEST_F(SerialTest, LinuxAutoconfigSequenceFindsA16550A) {
  out(kIer, 0x00);
  EXPECT_EQ(in(kIer)&0x0f, 0x00);
  out(kIer, 0x0f);
  EXPECT_EQ(in(kIer)&0x0f, 0x0f);  // "a UART is there"
  out(kIer, 0x00);
  uint8_t save_mcr = in(kMcr);
  out(kMcr, 0x10 | 0x0a);
  EXPECT_EQ(in(kMsr)&0xf0, 0x90);  // loopback test passes
  out(kMcr, save_mcr);
  out(kLcr, 0xbf);
  out(kFcr, 0x00);  // EFR write on a 16650 is FCR here
  out(kLcr, 0x00);
  out(kFcr, 0x01);
  EXPECT_EQ(in(kIir) >> 6, 3);  // FIFO bits: 16550A
  out(kLcr, 0x80);
  EXPECT_NE(in(kIir), 0);  // reads as "no EFR": not a 16650V1
  out(kLcr, 0x00);
  out(kFcr, 0x21);                 // 64-byte FIFO request
  EXPECT_EQ(in(kIir)&0xe0, 0xc0);  // not a 16750
  out(kFcr, 0x01);
  out(kIer, 0x40);
  EXPECT_EQ(in(kIer)&0x40, 0);  // UUE does not stick: not an XScale
  // Startup's THRE check: the interrupt shows up after each enable.
  out(kIer, 0x02);
  EXPECT_EQ(in(kIir)&0x01, 0);
  out(kIer, 0x00);
  out(kIer, 0x02);
  EXPECT_EQ(in(kIir)&0x01, 0);
  out(kIer, 0x00);
  EXPECT_FALSE(line->level());
}

TEST_F(SerialTest, InputFromAnotherThreadArrivesInOrderWithoutLossOrDuplicates) {
  std::string sent;
  for (int i = 0; i < 2000; ++i) sent.push_back(static_cast<char>('a' + i % 26));
  std::thread host([&] {
    size_t at = 0;
    while (at < sent.size()) {
      auto rest = std::span(reinterpret_cast<const uint8_t*>(sent.data()) + at, sent.size() - at);
      at += uart.enqueue_input(rest.first(std::min<size_t>(rest.size(), 7)));
      if (at < sent.size()) std::this_thread::yield();
    }
  });
  std::string got;
  while (got.size() < sent.size()) {
    if (in(kLsr)&0x01) got.push_back(static_cast<char>(in(kThr)));
  }
  host.join();
  EXPECT_EQ(got, sent);
  EXPECT_EQ(in(kLsr)&0x03, 0);  // nothing left over, no overrun
}

TEST_F(SerialTest, WideAccessesAreNotDecoded) {
  uint16_t v = 0;
  uart.read(kScr - 1, std::span(reinterpret_cast<uint8_t*>(&v), 2));
  EXPECT_EQ(v, 0xffff);
}

}  // namespace
}  // namespace ioasis::devices
