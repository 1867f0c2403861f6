"""A DVC pipeline that classifies BreakHis histopathology images as benign or malignant."""
