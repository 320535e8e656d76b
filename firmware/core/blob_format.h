/* blob_format.h - GENERATED from host/mote/format/spec.py by
 * host/mote/format/gen_header.py (make -C firmware blob-format); do not edit.
 * The .mote blob's constants, offsets and limits (docs/blob-format.md). */
#ifndef MOTE_BLOB_FORMAT_H
#define MOTE_BLOB_FORMAT_H

#define MOTE_MAGIC 0x45544f4du
#define MOTE_VERSION 3u
#define MOTE_HEADER_BYTES 256u
#define MOTE_ALIGN 32u
#define MOTE_TABLE_ENTRY_BYTES 32u
#define MOTE_GLOBAL_LAYER 0xffffu
#define MOTE_CRC_START 16u

/* limits */
#define MOTE_MAX_LAYERS 64u
#define MOTE_MAX_DIM 16777216u
#define MOTE_MAX_SEQ_LEN 16777216u
#define MOTE_MIN_GROUP 2u
#define MOTE_MAX_GROUP 1024u
#define MOTE_ROPE_THETA_MAX 3e+38f
#define MOTE_NORM_EPS_MAX 1.0f

/* header field offsets */
#define MOTE_H_MAGIC 0u
#define MOTE_H_VERSION 4u
#define MOTE_H_TOTAL_BYTES 8u
#define MOTE_H_CRC32 12u
#define MOTE_H_HEADER_BYTES 16u
#define MOTE_H_DIM 20u
#define MOTE_H_HIDDEN_DIM 24u
#define MOTE_H_N_LAYERS 28u
#define MOTE_H_N_HEADS 32u
#define MOTE_H_N_KV_HEADS 36u
#define MOTE_H_HEAD_DIM 40u
#define MOTE_H_VOCAB_SIZE 44u
#define MOTE_H_MAX_SEQ_LEN 48u
#define MOTE_H_CTX_LEN 52u
#define MOTE_H_ARENA_BYTES 56u
#define MOTE_H_GROUP_SIZE 60u
#define MOTE_H_ACTIVATION 64u
#define MOTE_H_FLAGS 68u
#define MOTE_H_ROPE_THETA 72u
#define MOTE_H_NORM_EPS 76u
#define MOTE_H_N_TENSORS 80u
#define MOTE_H_TENSOR_TABLE_OFFSET 84u
#define MOTE_H_TOKENIZER_OFFSET 88u
#define MOTE_H_TOKENIZER_BYTES 92u
#define MOTE_H_SPARSITY_OFFSET 96u
#define MOTE_H_SPARSITY_BYTES 100u
#define MOTE_H_CHAT_OFFSET 104u
#define MOTE_H_CHAT_BYTES 108u
#define MOTE_H_RESERVED0 112u
#define MOTE_H_RESERVED0_BYTES 16u
#define MOTE_H_NAME 128u
#define MOTE_H_NAME_BYTES 32u
#define MOTE_H_RESERVED1 160u
#define MOTE_H_RESERVED1_BYTES 96u

/* header flags */
#define MOTE_FLAG_TIED_CLASSIFIER (1u << 0)
#define MOTE_FLAGS_KNOWN 0x1u

/* codes */
#define MOTE_ACTIVATION_SILU 0u
#define MOTE_ACTIVATION_RELU 1u
#define MOTE_DTYPE_F32 0u
#define MOTE_DTYPE_Q8 2u
#define MOTE_DTYPE_Q4 3u
#define MOTE_DTYPE_Q4A 4u
#define MOTE_DTYPE_CODES 5u
/* names by dtype code (a designated initializer; unnamed codes are NULL) */
#define MOTE_DTYPE_NAMES_INIT { [0] = "f32", [2] = "q8", [3] = "q4", [4] = "q4a" }
#define MOTE_LAYOUT_CODE_ROWS 0u
#define MOTE_LAYOUT_CODE_COLUMNS 1u
#define MOTE_LAYOUT_CODE_BUNDLED 2u
#define MOTE_KIND_TOK_EMBEDDING 1u
#define MOTE_KIND_ATTN_NORM 2u
#define MOTE_KIND_WQ 3u
#define MOTE_KIND_WK 4u
#define MOTE_KIND_WV 5u
#define MOTE_KIND_WO 6u
#define MOTE_KIND_FFN_NORM 7u
#define MOTE_KIND_W_GATE 8u
#define MOTE_KIND_W_UP 9u
#define MOTE_KIND_W_DOWN 10u
#define MOTE_KIND_FINAL_NORM 11u
#define MOTE_KIND_CLASSIFIER 12u
#define MOTE_LAYER_KINDS 9u
/* per kind code, a bit mask of the dtype codes allowed for it */
#define MOTE_KIND_DTYPES_INIT { 0u, 0x1cu, 0x1u, 0x1cu, 0x1cu, 0x1cu, 0x1cu, 0x1u, 0x1cu, 0x1cu, 0x1cu, 0x1u, 0x1cu }

/* tensor table entry field offsets */
#define MOTE_T_KIND 0u
#define MOTE_T_DTYPE 1u
#define MOTE_T_LAYER 2u
#define MOTE_T_ROWS 4u
#define MOTE_T_COLS 8u
#define MOTE_T_DATA_OFFSET 12u
#define MOTE_T_DATA_BYTES 16u
#define MOTE_T_SCALES_OFFSET 20u
#define MOTE_T_SCALES_BYTES 24u
#define MOTE_T_LAYOUT 28u

/* sparsity section */
#define MOTE_SPARSITY_MAGIC 0x53525053u
#define MOTE_SPARSITY_HEADER_BYTES 32u
#define MOTE_S_MAGIC 0u
#define MOTE_S_N_LAYERS 4u
#define MOTE_S_FLAGS 8u
#define MOTE_S_TARGET 12u
#define MOTE_S_RESERVED 16u
#define MOTE_S_RESERVED_BYTES 16u
#define MOTE_SPARSE_POINT_ATTN_IN 0u
#define MOTE_SPARSE_POINT_ATTN_OUT 1u
#define MOTE_SPARSE_POINT_FFN_IN 2u
#define MOTE_SPARSE_POINT_GATE 3u
#define MOTE_SPARSE_POINT_COUNT 4u

/* chat section: the header, then the segments in this order, lengths in the header */
#define MOTE_CHAT_MAGIC 0x54414843u
#define MOTE_CHAT_HEADER_BYTES 96u
#define MOTE_C_MAGIC 0u
#define MOTE_C_NAME 4u
#define MOTE_C_NAME_BYTES 16u
#define MOTE_C_N_STOPS 20u
#define MOTE_C_STOP0 24u
#define MOTE_C_STOP1 28u
#define MOTE_C_STOP2 32u
#define MOTE_C_STOP3 36u
#define MOTE_C_BEGIN_BYTES 40u
#define MOTE_C_SYSTEM_BYTES 44u
#define MOTE_C_USER_FIRST_BYTES 48u
#define MOTE_C_USER_BYTES 52u
#define MOTE_C_ASSISTANT_BYTES 56u
#define MOTE_C_ASSISTANT_END_BYTES 60u
#define MOTE_C_DEFAULT_SYSTEM_BYTES 64u
#define MOTE_C_RESERVED 68u
#define MOTE_C_RESERVED_BYTES 28u
#define MOTE_CHAT_SEG_BEGIN 0u
#define MOTE_CHAT_SEG_SYSTEM 1u
#define MOTE_CHAT_SEG_USER_FIRST 2u
#define MOTE_CHAT_SEG_USER 3u
#define MOTE_CHAT_SEG_ASSISTANT 4u
#define MOTE_CHAT_SEG_ASSISTANT_END 5u
#define MOTE_CHAT_SEG_DEFAULT_SYSTEM 6u
#define MOTE_CHAT_SEGMENTS 7u
/* per segment: 0 no content mark, 1 exactly one, 2 at most one (none when empty),
 * 3 plain text */
#define MOTE_CHAT_CONTENT_INIT { 0u, 1u, 2u, 1u, 0u, 0u, 3u }
#define MOTE_CHAT_MAX_STOPS 4u
#define MOTE_CHAT_SEGMENT_MAX 128u
#define MOTE_CHAT_SYSTEM_MAX 1024u
#define MOTE_CHAT_TOKEN_MARK 0xffu
#define MOTE_CHAT_CONTENT_MARK 0xfeu

/* why a blob is refused (mote_status_str; the host's BlobError says the same) */
#define MOTE_REASON_TRUNCATED "blob truncated"
#define MOTE_REASON_MAGIC "not a .mote blob (bad magic)"
#define MOTE_REASON_VERSION "unsupported format version: reconvert with mote convert"
#define MOTE_REASON_CRC "CRC mismatch: blob corrupted"
#define MOTE_REASON_HEADER "impossible hyperparameters in the header"
#define MOTE_REASON_TABLE "tensor table entry out of bounds, misaligned, mis-shaped or overlapping"
#define MOTE_REASON_TOKENIZER "tokenizer section malformed"
#define MOTE_REASON_SPARSITY "sparsity section malformed"
#define MOTE_REASON_CHAT "chat section malformed"
#define MOTE_REASON_VALUES "non-finite value (NaN or infinity) in a norm or a scale"

/* the layout tiles the header, an entry and the sparsity header exactly */
typedef char mote_format_assert_header[(MOTE_H_RESERVED1 + MOTE_H_RESERVED1_BYTES == MOTE_HEADER_BYTES) ? 1 : -1];
typedef char mote_format_assert_entry[(MOTE_T_LAYOUT + 4u == MOTE_TABLE_ENTRY_BYTES) ? 1 : -1];
typedef char mote_format_assert_sparsity[(MOTE_S_RESERVED + MOTE_S_RESERVED_BYTES == MOTE_SPARSITY_HEADER_BYTES) ? 1 : -1];
typedef char mote_format_assert_chat[(MOTE_C_RESERVED + MOTE_C_RESERVED_BYTES == MOTE_CHAT_HEADER_BYTES) ? 1 : -1];
typedef char mote_format_assert_aligned[(MOTE_HEADER_BYTES % MOTE_ALIGN == 0 && MOTE_SPARSITY_HEADER_BYTES % 4u == 0) ? 1 : -1];
typedef char mote_format_assert_layer_field[(MOTE_MAX_LAYERS < MOTE_GLOBAL_LAYER) ? 1 : -1];
typedef char mote_format_assert_group_sum_exact_in_f32[(127u * 127u * MOTE_MAX_GROUP < (1u << 24)) ? 1 : -1];
typedef char mote_format_assert_f32[(sizeof(float) == 4) ? 1 : -1];

#endif /* MOTE_BLOB_FORMAT_H */
