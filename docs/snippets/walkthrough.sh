cdo-train --dataset folder --data-root my_parts --normal-dir good --abnormal-dir defect \
          --mask-dir defect_masks --calibration-dir my_parts/calib_good --class-name bracket --output-dir runs
cdo-export runs/tf_efficientnet_lite0-none/bracket/seed_111 -o bracket_bundle
cdo-inspect bracket_bundle --source new_parts --once --out inspected
