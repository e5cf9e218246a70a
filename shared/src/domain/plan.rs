//! Decides how a file of a given size is uploaded: one PUT, or parts of a chosen size.

/// S3's limits for multipart uploads and single PUTs.
pub const MIN_PART_SIZE: u64 = 5 << 20;
pub const MAX_PART_SIZE: u64 = 5 << 30;
pub const MAX_PART_COUNT: u64 = 10_000;
pub const MAX_SINGLE_PUT_SIZE: u64 = 5 << 30;
pub const MAX_OBJECT_SIZE: u64 = 5 << 40;

/// How the bytes of one upload job travel to storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadShape {
    SinglePart,
    Multipart { part_size: u64, part_count: u32 },
}

impl UploadShape {
    /// Chooses the shape for `file_size` bytes: one PUT up to `threshold` (never above 5 GiB),
    /// parts above it, of `preferred_part_size` when that needs at most 10,000 parts, else of the
    /// smallest whole number of MiB that does.
    ///
    /// Callers validate `file_size` (1..=5 TiB) first; sizes outside it are clamped into the
    /// limits rather than producing an impossible plan.
    pub fn for_size(file_size: u64, threshold: u64, preferred_part_size: u64) -> Self {
        if file_size <= threshold.min(MAX_SINGLE_PUT_SIZE) {
            return UploadShape::SinglePart;
        }
        let preferred = preferred_part_size.clamp(MIN_PART_SIZE, MAX_PART_SIZE);
        let part_size = if file_size.div_ceil(preferred) <= MAX_PART_COUNT {
            preferred
        } else {
            const MIB: u64 = 1 << 20;
            (file_size.div_ceil(MAX_PART_COUNT).div_ceil(MIB) * MIB)
                .clamp(MIN_PART_SIZE, MAX_PART_SIZE)
        };
        let part_count = u32::try_from(file_size.div_ceil(part_size)).unwrap_or(u32::MAX);
        UploadShape::Multipart {
            part_size,
            part_count,
        }
    }

    pub fn part_size(&self, file_size: u64) -> u64 {
        match self {
            UploadShape::SinglePart => file_size,
            UploadShape::Multipart { part_size, .. } => *part_size,
        }
    }

    pub fn part_count(&self) -> u32 {
        match self {
            UploadShape::SinglePart => 1,
            UploadShape::Multipart { part_count, .. } => *part_count,
        }
    }

    /// The size that part `part_number` (1-based) must have: the last part holds the remainder.
    pub fn expected_part_size(&self, file_size: u64, part_number: u32) -> Option<u64> {
        let count = self.part_count();
        if part_number == 0 || part_number > count {
            return None;
        }
        let part_size = self.part_size(file_size);
        Some(if part_number == count {
            file_size - part_size * u64::from(count - 1)
        } else {
            part_size
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const THRESHOLD: u64 = 100 << 20;
    const PREFERRED: u64 = 16 << 20;

    #[test]
    fn small_files_are_one_put_and_large_ones_use_the_preferred_part_size() {
        assert_eq!(
            UploadShape::for_size(1, THRESHOLD, PREFERRED),
            UploadShape::SinglePart
        );
        assert_eq!(
            UploadShape::for_size(THRESHOLD, THRESHOLD, PREFERRED),
            UploadShape::SinglePart
        );
        assert_eq!(
            UploadShape::for_size(THRESHOLD + 1, THRESHOLD, PREFERRED),
            UploadShape::Multipart {
                part_size: PREFERRED,
                part_count: 7
            }
        );
    }

    #[test]
    fn the_largest_object_fits_in_ten_thousand_parts() {
        let shape = UploadShape::for_size(MAX_OBJECT_SIZE, THRESHOLD, PREFERRED);
        let UploadShape::Multipart {
            part_size,
            part_count,
        } = shape
        else {
            panic!("5 TiB must be multipart");
        };
        assert_eq!(part_size, 525 << 20);
        assert!(u64::from(part_count) <= MAX_PART_COUNT);
        assert!(part_size * u64::from(part_count) >= MAX_OBJECT_SIZE);
    }

    #[test]
    fn a_threshold_above_five_gib_still_never_plans_a_single_put_above_it() {
        let shape = UploadShape::for_size(MAX_SINGLE_PUT_SIZE + 1, u64::MAX, PREFERRED);
        assert!(matches!(shape, UploadShape::Multipart { .. }));
    }

    #[test]
    fn expected_part_sizes_cover_the_file_exactly() {
        let size = 3 * (5 << 20) + 1234;
        let shape = UploadShape::for_size(size, 5 << 20, 5 << 20);
        assert_eq!(shape.part_count(), 4);
        assert_eq!(shape.expected_part_size(size, 1), Some(5 << 20));
        assert_eq!(shape.expected_part_size(size, 4), Some(1234));
        assert_eq!(shape.expected_part_size(size, 0), None);
        assert_eq!(shape.expected_part_size(size, 5), None);
    }

    proptest! {
        #[test]
        fn every_valid_size_gets_a_plan_storage_accepts(
            file_size in 1..=MAX_OBJECT_SIZE,
            threshold in 1..=MAX_SINGLE_PUT_SIZE,
            preferred in MIN_PART_SIZE..=MAX_PART_SIZE,
        ) {
            let shape = UploadShape::for_size(file_size, threshold, preferred);
            match shape {
                UploadShape::SinglePart => {
                    prop_assert!(file_size <= threshold);
                    prop_assert!(file_size <= MAX_SINGLE_PUT_SIZE);
                }
                UploadShape::Multipart { part_size, part_count } => {
                    prop_assert!(file_size > threshold);
                    prop_assert!((MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part_size));
                    prop_assert!((1..=MAX_PART_COUNT).contains(&u64::from(part_count)));
                    // parts cover the file, and the last part is not empty
                    prop_assert!(part_size * u64::from(part_count) >= file_size);
                    prop_assert!(part_size * u64::from(part_count - 1) < file_size);
                    if file_size.div_ceil(preferred) <= MAX_PART_COUNT {
                        prop_assert_eq!(part_size, preferred);
                    }
                    let total: u64 = (1..=part_count)
                        .map(|n| shape.expected_part_size(file_size, n).unwrap())
                        .sum();
                    prop_assert_eq!(total, file_size);
                }
            }
        }
    }
}
