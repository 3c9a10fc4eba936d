"""acgs_operator"""
