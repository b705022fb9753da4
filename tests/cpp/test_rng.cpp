// The counter-based generator against the Random123 known-answer vectors, and its independence
// from the order in which draws are made.
#include <gtest/gtest.h>

#include "rng.hpp"

using mgfast::rng::philox;
using mgfast::rng::U4;

TEST(Philox, KnownAnswerZero) {
  // Random123 kat_vectors: philox4x32 10 rounds, counter 0, key 0.
  const U4 r = philox(U4{{0, 0, 0, 0}}, 0, 0);
  EXPECT_EQ(r.v[0], 0x6627e8d5u);
  EXPECT_EQ(r.v[1], 0xe169c58du);
  EXPECT_EQ(r.v[2], 0xbc57ac4cu);
  EXPECT_EQ(r.v[3], 0x9b00dbd8u);
}

TEST(Philox, KnownAnswerOnes) {
  // Random123 kat_vectors: counter all ffffffff, key all ffffffff.
  const U4 r =
      philox(U4{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu);
  EXPECT_EQ(r.v[0], 0x408f276du);
  EXPECT_EQ(r.v[1], 0x41c83b0eu);
  EXPECT_EQ(r.v[2], 0xa20bc7c6u);
  EXPECT_EQ(r.v[3], 0x6d5451fdu);
}

TEST(Philox, StreamsAreIndependentOfDrawOrder) {
  mgfast::rng::Stream a(42, 7, 3), b(42, 7, 3);
  for (int i = 0; i < 10; ++i) a.next_u32();
  mgfast::rng::Stream c(42, 7, 3, 2);  // starts at counter 2 = after 8 draws
  b.next_u32();
  b.next_u32();
  for (int i = 0; i < 6; ++i) b.next_u32();
  EXPECT_EQ(b.next_u32(), c.next_u32());
  EXPECT_NE(mgfast::rng::normal_at(1, 2, 3, 4), mgfast::rng::normal_at(1, 2, 3, 5));
}
