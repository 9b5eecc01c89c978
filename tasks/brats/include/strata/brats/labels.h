// BraTS's classes and regions as the packed-slice evaluation reports them: the table's
// tumour classes (stored classes 1, 2, 3: necrotic core, edema, enhancing tumour) and
// the regions ET, TC, WT (nn::brats_regions(), in the report's order).
#pragma once

#include "strata/eval/evaluator.h"

namespace strata::brats {

const eval::EvalLabels& eval_labels();

}  // namespace strata::brats
