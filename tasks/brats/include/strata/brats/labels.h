// BraTS's classes and regions as the packed-slice evaluation reports them: the table's
// tumour classes (stored classes 1, 2, 3: necrotic core, edema, enhancing tumour) and
// the regions ET, TC, WT (of regions(), in the report's order).
#pragma once

#include "strata/eval/evaluator.h"
#include "strata/nn/metrics.h"

#include <vector>

namespace strata::brats {

// BraTS's tumour regions over the stored classes (1 necrotic core, 2 edema,
// 3 enhancing tumour): WT {1,2,3}, TC {1,3}, ET {3}, in that order.
const std::vector<nn::Region>& regions();

const eval::EvalLabels& eval_labels();

}  // namespace strata::brats
